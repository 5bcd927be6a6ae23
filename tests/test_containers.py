"""The containers install exactly the lock file's versions (the CPU image swaps only torch's build, not its version)."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import REPO

LOCK = dict(line.split("==") for line in (REPO / "requirements.lock").read_text().splitlines()
            if line and not line.startswith("#"))


def _dockerfile(kind: str) -> str:
    return (REPO / "containers" / kind / "Dockerfile").read_text()


def test_lock_pins_the_contract_versions() -> None:
    assert LOCK["cellpose"].startswith("3.1.") and LOCK["suite2p"].startswith("1.")


def test_both_images_install_the_lock_without_dependency_resolution() -> None:
    for kind in ("segmentation", "extraction"):
        text = _dockerfile(kind)
        assert "COPY requirements.lock" in text
        assert re.search(r"pip install --no-deps -r requirements(\.cpu)?\.lock", text), kind
        # No package pinned by hand beside the lock (torch's version is read from the lock).
        pinned = set(re.findall(r"([A-Za-z0-9_.-]+)==\d", text)) - {"torch"}
        assert not pinned, f"{kind} pins {pinned} outside requirements.lock"
        assert "FROM python:3.11" in text


def test_cpu_image_drops_only_cuda_packages_and_keeps_torch_version() -> None:
    text = _dockerfile("extraction")
    dropped = re.search(r"grep -v -E '\^\((.+?)\)==' requirements.lock", text).group(1).split("|")
    removed = {name for name in LOCK if any(re.fullmatch(pattern, name) for pattern in dropped)}
    assert removed == {"torch", "triton"} | {n for n in LOCK if n.startswith("nvidia-")}
    assert "torch==${torch_version}+cpu" in text and "sed -n 's/^torch==//p' requirements.lock" in text


def test_segmentation_image_bakes_cyto3_weights() -> None:
    text = _dockerfile("segmentation")
    assert "CELLPOSE_LOCAL_MODELS_PATH" in text and "model_type='cyto3'" in text


def test_images_carry_the_compiled_numba_cache() -> None:
    """Each image compiles the numba kernels at build time into a cache any user can write (numba's requirement
    for reading it too) with a CPU-independent target, after the package is installed."""
    for kind in ("segmentation", "extraction"):
        text = _dockerfile(kind)
        assert re.search(r"ENV NUMBA_CACHE_DIR=\S+ NUMBA_CPU_NAME=generic", text), kind
        warm = text.index("ophys-extraction warm-up")
        assert text.index("pip install --no-deps --no-build-isolation .") < warm, kind
        assert 'chmod -R a+rwX "$NUMBA_CACHE_DIR"' in text[warm:], kind
