"""The containers install exactly the lock file's versions, and the tools `make container-test` relies on work.

Building the images and running the demo in them is `make container-test` (tools/container_test.sh; README,
"Containers"): it needs podman or docker and takes tens of minutes, so it is not a unit test.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import h5py
import numpy as np

from conftest import REPO

LOCK = dict(line.split("==") for line in (REPO / "requirements.lock").read_text().splitlines()
            if line and not line.startswith("#"))
SHARED_BEGIN = "# ---- Shared with containers/"
SHARED_END = "# ---- End of the shared layers."
# The CUDA pieces the extraction image leaves out (README, "Containers").
CPU_IMAGE_DROPS = {"triton", "nvidia-cusolver-cu12", "nvidia-cuda-nvrtc-cu12", "nvidia-nvtx-cu12"}


def _dockerfile(kind: str) -> str:
    return (REPO / "containers" / kind / "Dockerfile").read_text()


def _shared_layers(kind: str) -> str:
    text = _dockerfile(kind)
    start = text.index("\n", text.index("\n", text.index(SHARED_BEGIN)) + 1)   # after the two marker lines
    return text[start:text.index(SHARED_END)]


def _cpu_lock() -> set[str]:
    """The packages the extraction image installs: the lock less its `grep -v -E '^(...)=='` pattern."""
    pattern = re.search(r"grep -v -E '\^\((.+?)\)==' requirements\.lock", _shared_layers("extraction")).group(1)
    return {name for name in LOCK if not re.fullmatch(f"({pattern})", name)}


def test_lock_pins_the_contract_versions() -> None:
    assert LOCK["cellpose"].startswith("3.1.") and LOCK["suite2p"].startswith("1.")


def test_both_images_install_the_lock_without_dependency_resolution() -> None:
    installer = [line for line in (REPO / "containers" / "pip_install.sh").read_text().splitlines()
                 if "pip install" in line and not line.lstrip().startswith("#")]
    assert len(installer) == 2 and all("pip install --no-deps" in line for line in installer), installer
    for kind in ("segmentation", "extraction"):
        text = _dockerfile(kind)
        assert "COPY requirements.lock" in text
        assert re.search(r"sh /run/pip_install\.sh requirements\.cpu\.lock", text), kind
        # No package pinned by hand beside the lock.
        pinned = set(re.findall(r"([A-Za-z0-9_.-]+)==\d", text))
        assert not pinned, f"{kind} pins {pinned} outside requirements.lock"
        # The base is a build argument whose default is Python 3.11 (users with Docker Hub need nothing else).
        assert re.search(r"^ARG BASE_IMAGE=docker\.io/library/python:3\.11\.\d+-slim-bookworm$", text, re.M), kind
        assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M), kind


def test_images_leave_out_the_test_only_gui_packages() -> None:
    """suite2p's GUI (requirements-gui.lock) is for the tests: `make install` installs it, no image does."""
    gui = [line.split("==")[0] for line in (REPO / "requirements-gui.lock").read_text().splitlines()
           if line and not line.startswith("#")]
    assert "PyQt6" in gui and not set(gui) & set(LOCK), set(gui) & set(LOCK)
    for kind in ("segmentation", "extraction"):
        assert "requirements-gui.lock" not in _dockerfile(kind), kind
    assert "-r requirements-gui.lock" in (REPO / "Makefile").read_text()


def test_images_share_their_dependency_layers() -> None:
    """Character for character, so that podman and docker build the 5 GB dependency layer once for both images."""
    assert _shared_layers("segmentation") == _shared_layers("extraction")
    assert "FROM ${BASE_IMAGE}" in _shared_layers("extraction")


def test_cpu_image_drops_only_cuda_pieces_and_segmentation_image_installs_the_whole_lock() -> None:
    cpu = _cpu_lock()
    assert set(LOCK) - cpu == CPU_IMAGE_DROPS
    assert "torch" in cpu
    # The segmentation image adds the lock's other lines on top of the shared layers: together, the whole lock.
    assert "grep -v -x -F -f requirements.cpu.lock requirements.lock > requirements.gpu.lock" in \
        _dockerfile("segmentation")
    assert "sh /run/pip_install.sh requirements.gpu.lock" in _dockerfile("segmentation")


def test_cpu_work_never_loads_what_the_extraction_image_drops() -> None:
    """PyPI's torch links most CUDA libraries (they must stay), but the dropped ones are never mapped by
    `import torch, suite2p` and the CPU torch operations suite2p's extraction and deconvolution use."""
    dropped_files = {str(Path(metadata.distribution(name).locate_file(path)).resolve())
                     for name in CPU_IMAGE_DROPS for path in metadata.files(name) or []
                     if ".so" in path.name}
    assert dropped_files, "the dropped packages hold shared libraries"
    code = (
        "import torch, suite2p, torch.nn.functional as F\n"
        "import ophys_extraction.traces, ophys_extraction.neuropil, ophys_extraction.rois, ophys_extraction.classify\n"
        "x = torch.randn(4, 64)\n"
        "F.conv1d(x[:, None], torch.ones(1, 1, 5)); F.max_pool1d(x[:, None], 3); torch.fft.fft(x); x @ x.T\n"
        "torch.linalg.svd(x)\n"
        "print('\\n'.join(line.split()[-1] for line in open('/proc/self/maps') if '/' in line))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    mapped = {str(Path(path).resolve()) for path in proc.stdout.splitlines()}
    assert any("libtorch_cpu" in path for path in mapped)
    assert not mapped & dropped_files, sorted(mapped & dropped_files)


def test_segmentation_image_bakes_cyto3_weights_and_checks_them() -> None:
    text = _dockerfile("segmentation")
    assert "CELLPOSE_LOCAL_MODELS_PATH=/opt/cellpose/models" in text
    assert "ARG CELLPOSE_MODELS=cyto3" in text and "models.Cellpose(gpu=False, model_type=sys.argv[1])" in text
    assert "resolve_model(sys.argv[1])" in text


def _compare(tmp_path: Path, **other: np.ndarray) -> subprocess.CompletedProcess:
    base = {"traces/roi": np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4),
            "rois/shape": np.array([3, 5, 5]), "iscell": np.zeros((3, 2), np.float32)}
    paths = []
    for name, datasets in (("a.h5", base), ("b.h5", {**base, **other})):
        with h5py.File(tmp_path / name, "w") as handle:
            for key, value in datasets.items():
                handle.create_dataset(key, data=value)
            handle.attrs["parameters"] = '{"segment": {"pretrained_model": "%s"}}' % name
        paths.append(str(tmp_path / name))
    return subprocess.run([sys.executable, "-c", "import sys; from ophys_extraction.cli import main; "
                           "sys.exit(main(['compare', *sys.argv[1:]]))", *paths],
                          capture_output=True, text=True, timeout=60)


def test_compare_extraction_passes_identical_datasets_and_reports_attributes(tmp_path: Path) -> None:
    proc = _compare(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == "identical: 3 datasets"
    assert "parameters.segment.pretrained_model differs (not counted): 'a.h5' vs 'b.h5'" in proc.stdout


def test_compare_extraction_fails_on_one_bit(tmp_path: Path) -> None:
    roi = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    roi[1, 2] = np.nextafter(roi[1, 2], np.float32(2))
    proc = _compare(tmp_path, **{"traces/roi": roi, "iscell": np.zeros((3, 2), np.float64)})
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert "traces/roi: 1 of 12 values differ, largest |difference| 5.96e-08" in lines
    assert "iscell: float32(3, 2) vs float64(3, 2)" in lines and lines[-1] == "DIFFERENT: 2 of 3 datasets"


def test_images_carry_the_compiled_numba_cache() -> None:
    """Each image compiles the numba kernels at build time into a cache any user can write (numba's requirement
    for reading it too) with a CPU-independent target, after the package is installed."""
    for kind in ("segmentation", "extraction"):
        text = _dockerfile(kind)
        assert re.search(r"ENV NUMBA_CACHE_DIR=\S+ NUMBA_CPU_NAME=generic", text), kind
        warm = text.index("ophys-extraction warm-up")
        assert text.index("--no-build-isolation") < warm, kind
        assert 'chmod -R a+rwX "$NUMBA_CACHE_DIR"' in text[warm:], kind
