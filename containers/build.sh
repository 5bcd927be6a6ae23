#!/usr/bin/env bash
# Build both images (`make containers`): containers/segmentation and containers/extraction, tagged as the pipeline's
# --segmentation_container / --extraction_container defaults in nextflow.config.
#
#   * Engine: $ENGINE, else podman if installed, else docker if its daemon answers, else podman installed with apt
#     (as root; with runc and debootstrap, the recipe that works on Debian VMs without a registry).
#   * Base: $BASE_IMAGE, else the Dockerfiles' default (python:3.11 slim from Docker Hub); where that cannot be
#     pulled, a local Debian bookworm image with Debian's own Python 3.11, built once with debootstrap.
#   * pip reaches the host's index: the host's pip config, CA bundle and PIP_* network settings are passed as build
#     secrets (never stored in a layer), and the host's wheelhouse ($WHEELHOUSE, the one `make install` fills) as the
#     `wheels` build context, so a rebuild on a machine with a warm wheelhouse downloads nothing.
#   * Weights: cyto3 is downloaded into the segmentation image when www.cellpose.org answers; otherwise the model
#     files in $MODEL_DIR (default: the bundled assets/models) are baked instead, and the build says so.
#     Set CELLPOSE_MODELS="cyto3 nuclei ..." or MODEL_DIR=... to choose.
#   * BUILD_ARGS: more arguments for `$ENGINE build` (e.g. --no-cache); SEGMENTATION_IMAGE / EXTRACTION_IMAGE: tags.
# Layers are cached by the engine: a second run rebuilds only what changed. Prints each image's size and build time.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

DEFAULT_BASE=docker.io/library/python:3.11.7-slim-bookworm
LOCAL_BASE=localhost/ophys-extraction-base:bookworm-py3.11
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
WHEELHOUSE=${WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/ophys-extraction/wheels}
CYTO3_URL=https://www.cellpose.org/models/cyto3

say() { echo "build.sh: $*"; }
die() { echo "build.sh: $*" >&2; exit 1; }

# Image names: the pipeline's defaults, read from nextflow.config (the one place they are written).
config_default() { sed -n "s/^ *$1 *= *'\(.*\)'.*/\1/p" nextflow.config; }
SEGMENTATION_IMAGE=${SEGMENTATION_IMAGE:-$(config_default segmentation_container)}
EXTRACTION_IMAGE=${EXTRACTION_IMAGE:-$(config_default extraction_container)}
[[ -n $SEGMENTATION_IMAGE && -n $EXTRACTION_IMAGE ]] || die "cannot read the container names from nextflow.config"

apt_install() {
    [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null \
        || die "$* missing: install them (Debian/Ubuntu: apt-get install $*) or set ENGINE=docker with a running daemon"
    say "installing $* with apt"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

choose_engine() {
    if [[ -n ${ENGINE:-} ]]; then :
    elif command -v podman >/dev/null; then ENGINE=podman
    elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then ENGINE=docker
    else apt_install podman runc; ENGINE=podman
    fi
    command -v "$ENGINE" >/dev/null || die "ENGINE=$ENGINE is not installed"
    say "engine: $("$ENGINE" --version)"
}

image_exists() {
    if [[ $ENGINE == podman ]]; then podman image exists "$1"; else docker image inspect "$1" >/dev/null 2>&1; fi
}

# A Debian bookworm root filesystem with Debian's python3 (3.11) and a virtualenv on PATH, so `python` and `pip`
# mean what they mean in the python images (and pip may install: Debian marks its own Python externally managed).
build_local_base() {
    command -v debootstrap >/dev/null || apt_install debootstrap
    [[ $(id -u) == 0 ]] || die "building the local base image needs root (debootstrap); or pass BASE_IMAGE=..."
    local rootfs start=$SECONDS
    rootfs=$(mktemp -d "${TMPDIR:-/var/tmp}/ophys-extraction-base.XXXXXX")
    chmod 755 "$rootfs"   # it becomes the image's /: mktemp's 0700 locks out every non-root user under rootless podman
    say "building $LOCAL_BASE from $DEBIAN_MIRROR with debootstrap (in $rootfs)"
    if ! debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" \
            "$DEBIAN_MIRROR" >"$rootfs.log" 2>&1; then
        tail -20 "$rootfs.log"
        die "debootstrap failed (log: $rootfs.log)"
    fi
    chroot "$rootfs" python3 -m venv /opt/venv
    chroot "$rootfs" apt-get clean
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
    tar -C "$rootfs" -c . | "$ENGINE" import \
        --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["python"]' - "$LOCAL_BASE" >/dev/null
    rm -rf "$rootfs" "$rootfs.log"
    SUMMARY+=("$LOCAL_BASE: $(image_size "$LOCAL_BASE"), built in $((SECONDS - start)) s")
}

choose_base() {
    if [[ -n ${BASE_IMAGE:-} ]]; then return; fi
    if image_exists "$DEFAULT_BASE" || "$ENGINE" pull -q "$DEFAULT_BASE" >/dev/null 2>&1; then
        BASE_IMAGE=$DEFAULT_BASE
    else
        say "cannot pull $DEFAULT_BASE; using the local base $LOCAL_BASE"
        image_exists "$LOCAL_BASE" || build_local_base
        BASE_IMAGE=$LOCAL_BASE
    fi
}

# Podman's default ulimits (nofile 1048576, nproc pid_max) exceed the hard limits of some VMs, where runc may not
# raise them (no CAP_SYS_RESOURCE): every run and build step then fails with "error setting rlimit". As root, cap
# podman's defaults at the host's hard limits in a drop-in file (the same limits the caller already has).
check_podman_runs() {
    [[ $ENGINE == podman ]] || return 0
    local err
    err=$(podman run --rm "$BASE_IMAGE" true 2>&1) && return 0
    if [[ $err == *"error setting rlimit"* && $(id -u) == 0 ]]; then
        local nofile nproc pid_max conf=/etc/containers/containers.conf.d/50-ophys-extraction-ulimits.conf
        nofile=$(ulimit -Hn); nproc=$(ulimit -Hu); pid_max=$(cat /proc/sys/kernel/pid_max)
        [[ $nproc == unlimited || $nproc -gt $pid_max ]] && nproc=$pid_max   # podman caps nproc at pid_max itself
        [[ $nofile == unlimited ]] && nofile=1048576
        mkdir -p "$(dirname "$conf")"
        {
            echo "# Written by ophys-extraction containers/build.sh: podman's defaults exceed this host's hard limits."
            echo "[containers]"
            echo "default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]"
        } >"$conf"
        say "podman could not set its default ulimits here; wrote $conf (nofile=$nofile, nproc=$nproc)"
        err=$(podman run --rm "$BASE_IMAGE" true 2>&1) && return 0
    fi
    die "podman cannot run a container here: $err"
}

SECRETS=()
pip_secrets() {
    local conf="" ca="" env_file name
    for name in "${PIP_CONFIG_FILE:-}" /etc/pip.conf "${XDG_CONFIG_HOME:-$HOME/.config}/pip/pip.conf" \
                "$HOME/.pip/pip.conf"; do
        [[ -n $name && -f $name ]] && { conf=$name; break; }
    done
    if [[ -n $conf ]]; then
        SECRETS+=(--secret "id=pip.conf,src=$conf")
        ca=$(sed -n 's/^ *cert *= *//p' "$conf" | tail -1)
    fi
    ca=${PIP_CERT:-${ca:-${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-}}}}
    if [[ -n $ca && -f $ca ]]; then SECRETS+=(--secret "id=pip-ca,src=$ca"); else ca=""; fi
    # Network settings only: path-valued ones (PIP_FIND_LINKS, PIP_CERT...) name host files.
    PIP_ENV_FILE=$(mktemp)
    for name in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST PIP_PROXY PIP_DEFAULT_TIMEOUT PIP_TIMEOUT \
                PIP_RETRIES; do
        if [[ -n ${!name:-} ]]; then printf '%s=%q\n' "$name" "${!name}" >>"$PIP_ENV_FILE"; fi
    done
    if [[ -s $PIP_ENV_FILE ]]; then SECRETS+=(--secret "id=pip-env,src=$PIP_ENV_FILE"); fi
    say "pip settings passed in: config ${conf:-none}, CA bundle ${ca:-none}," \
        "$(wc -l <"$PIP_ENV_FILE") PIP_* variable(s)"
}

CONTEXTS=()
wheel_context() {
    if [[ -d $WHEELHOUSE ]] && compgen -G "$WHEELHOUSE/*.whl" >/dev/null; then
        CONTEXTS+=(--build-context "wheels=$WHEELHOUSE")
        say "wheelhouse: $WHEELHOUSE"
    else
        say "no wheelhouse at $WHEELHOUSE: pip downloads everything (make install fills it)"
    fi
}

MODEL_ARGS=()
model_args() {
    if [[ -z ${CELLPOSE_MODELS+set} ]]; then
        if curl -fsI --max-time 15 "$CYTO3_URL" >/dev/null 2>&1; then
            CELLPOSE_MODELS=cyto3
        else
            CELLPOSE_MODELS=""
            MODEL_DIR=${MODEL_DIR:-$REPO/assets/models}
            say "WARNING: $CYTO3_URL cannot be reached: the segmentation image gets no cyto3, only the model files" \
                "in $MODEL_DIR (run with --pretrained_model /opt/cellpose/models/<file>)"
        fi
    fi
    MODEL_ARGS+=(--build-arg "CELLPOSE_MODELS=$CELLPOSE_MODELS")
    if [[ -n ${MODEL_DIR:-} ]]; then
        [[ -d $MODEL_DIR ]] || die "MODEL_DIR=$MODEL_DIR is not a directory"
        MODEL_ARGS+=(--build-context "models=$MODEL_DIR")
    fi
    say "segmentation weights: built-in [${CELLPOSE_MODELS}], model files from ${MODEL_DIR:-nowhere}"
}

build() {  # build IMAGE DOCKERFILE EXTRA_ARGS...
    local image=$1 dockerfile=$2 start size
    shift 2
    start=$SECONDS
    say "building $image"
    "$ENGINE" build -f "$dockerfile" -t "$image" --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        "${SECRETS[@]}" "${CONTEXTS[@]}" "$@" ${BUILD_ARGS:-} .
    SUMMARY+=("$image: $(image_size "$image"), built in $((SECONDS - start)) s")
}

image_size() {
    "$ENGINE" image inspect --format '{{.Size}}' "$1" | awk '{printf "%.2f GB (%.0f bytes)", $1 / 1e9, $1}'
}

SUMMARY=()
PIP_ENV_FILE=""
trap 'rm -f "$PIP_ENV_FILE"' EXIT
choose_engine
choose_base
check_podman_runs
say "base image: $BASE_IMAGE"
pip_secrets
wheel_context
model_args
build "$EXTRACTION_IMAGE" containers/extraction/Dockerfile
build "$SEGMENTATION_IMAGE" containers/segmentation/Dockerfile "${MODEL_ARGS[@]}"
printf 'build.sh: %s\n' "${SUMMARY[@]}"
