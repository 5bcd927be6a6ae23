#!/usr/bin/env bash
# The wheels bench/gpu.py needs on a GPU machine that has torch (and numpy, scipy, h5py, scikit-image, opencv,
# numba, tifffile, matplotlib) but not Cellpose: Cellpose 3 and suite2p at requirements.lock's versions, and the
# packages of theirs such an image lacks, for CPython 3.12 on x86-64, into .whl/ (ignored by git; about 3 MB).
# Run here, where PyPI is reached; then carry .whl to the GPU machine (bench/gpu.py's docstring says how to install).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON_VERSION=${PYTHON_VERSION:-3.12}
names=(cellpose fastremap fill_voids natsort roifile suite2p)
specs=()
for name in "${names[@]}"; do
    specs+=("$(grep -i "^${name}==" requirements.lock)")
done
mkdir -p .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYTHON_VERSION" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "${specs[@]}"
ls -l .whl
