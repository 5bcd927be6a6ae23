#!/usr/bin/env bash
# `make container-test`: build the images (containers/build.sh: only what changed), run the demo (`-profile test`)
# in the project's environment and in the images, and compare every plane's extraction.h5 dataset by dataset,
# bit for bit. Also checks that each task ran in its image and that SEGMENT in the image fails with one line when
# asked for weights the image lacks. Exit 0 only if all of that holds.
#
# Run as root (rootful podman), the container run's tasks use an unprivileged uid (nobody), to prove the images
# need no root; as another user, the profile's own mapping (the calling user) is used.
# Outputs stay in $CONTAINER_TEST_DIR (default /var/tmp/ophys-extraction-container-test), replaced on each run.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
PY=$REPO/.venv/bin/python
NEXTFLOW=$REPO/.venv/bin/nextflow
DIR=${CONTAINER_TEST_DIR:-${TMPDIR:-/var/tmp}/ophys-extraction-container-test}
# The model file the test image bakes (build.sh bakes assets/models when cyto3 cannot be downloaded).
MODEL_IN_IMAGE=/opt/cellpose/models/ophys_cp3

say() { echo "container-test: $*"; }
fail() { echo "container-test: FAILED: $*" >&2; exit 1; }

[[ -x $NEXTFLOW && -f demo_data/.complete ]] || fail "run \`make install demo-data\` first"
start=$SECONDS
containers/build.sh
ENGINE=${ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}
config_default() { sed -n "s/^ *$1 *= *'\(.*\)'.*/\1/p" nextflow.config; }
SEGMENTATION_IMAGE=$(config_default segmentation_container)
EXTRACTION_IMAGE=$(config_default extraction_container)
build_s=$((SECONDS - start))

rm -rf "$DIR"
mkdir -p "$DIR/host" "$DIR/container"
export NXF_OFFLINE=true NXF_ANSI_LOG=false

run_demo() {  # run_demo NAME NEXTFLOW_ARGS...: the demo from its own launch directory, log kept beside it
    local name=$1 t=$SECONDS
    shift
    say "demo run: $name"
    (cd "$DIR/$name" && "$NEXTFLOW" -log "$DIR/$name/nextflow.log" run "$REPO/main.nf" -profile "$@" \
        --outdir "$DIR/$name/results" >"$DIR/$name/stdout.txt" 2>&1) \
        || { tail -30 "$DIR/$name/stdout.txt"; fail "the $name run failed (log: $DIR/$name/nextflow.log)"; }
    say "demo run: $name took $((SECONDS - t)) s"
}

run_demo host test
container_args=(test,"$ENGINE" --pretrained_model "$MODEL_IN_IMAGE")
if [[ $(id -u) == 0 ]]; then
    # Task directories must be writable by the task's uid: Nextflow creates them with the launcher's umask.
    printf '%s.runOptions = "--network none -u 65534:65534"\n' "$ENGINE" >"$DIR/as-nobody.config"
    container_args+=(-c "$DIR/as-nobody.config")
    (umask 0000 && run_demo container "${container_args[@]}")
else
    run_demo container "${container_args[@]}"
fi

# Every task of the container run ran in its image, as the intended user, with read-only inputs.
n_tasks=0
for script in "$DIR"/container/work/*/*/.command.run; do
    n_tasks=$((n_tasks + 1))
    grep -q "$ENGINE run" "$script" || fail "$script does not run a container"
    if grep -q "segment.py" "${script%.run}.sh"; then image=$SEGMENTATION_IMAGE; else image=$EXTRACTION_IMAGE; fi
    grep -q -- " $image " "$script" || fail "$script does not use $image"
    grep -q -- ':ro ' "$script" || fail "$script mounts no input read-only"
done
((n_tasks > 0)) || fail "no task directories under $DIR/container/work"
owners=$(find "$DIR"/container/work -type f -name '*.h5' -printf '%u\n' | sort -u | tr '\n' ' ')
say "$n_tasks tasks ran in the images; the HDF5 files they wrote are owned by: $owners"

# Same planes, same datasets.
ls "$DIR"/host/results/*/extraction/extraction.h5 >/dev/null 2>&1 || fail "the host run wrote no extraction.h5"
say "every plane's extraction.h5: $DIR/host/results vs the container run's"
"$REPO/.venv/bin/ophys-extraction" compare "$DIR/host/results" "$DIR/container/results" \
    || fail "the runs differ (planes or datasets)"

# Weights the image lacks: SEGMENT fails with exit 2 and one line (the test image has no cyto3; a production image
# has no `nuclei`).
summary=$(find "$DIR"/host/work -name summary.h5 -type f | head -1)   # SUMMARY_IMAGES' own, not a staged link
missing=cyto3
"$ENGINE" run --rm "$SEGMENTATION_IMAGE" test -f /opt/cellpose/models/cyto3 && missing=nuclei
set +e
err=$("$ENGINE" run --rm -u 65534:65534 -v "$(dirname "$summary")":/in:ro "$SEGMENTATION_IMAGE" \
    segment.py --summary /in/summary.h5 --output /tmp/segmentation.h5 --pretrained_model "$missing" 2>&1 >/dev/null)
rc=$?
set -e
say "segment.py --pretrained_model $missing in the image: exit $rc: $err"
[[ $rc == 2 && $(wc -l <<<"$err") == 1 && $err == *"$missing"* ]] || fail "expected exit 2 and one line naming $missing"

say "OK: $(ls -d "$DIR"/host/results/*/extraction/extraction.h5 | wc -l) plane(s) identical in the images and the project environment" \
    "(build/check $build_s s, total $((SECONDS - start)) s)"
