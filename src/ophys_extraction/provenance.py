"""Versions of the software a result was made with (for versions.yml and extraction.h5 attributes)."""

from __future__ import annotations

import importlib.metadata
import platform

# Distribution names as installed; read from metadata so nothing heavy (torch, suite2p) is imported.
PACKAGES = ("ophys-extraction", "cellpose", "suite2p", "torch", "numpy", "scipy", "numba", "h5py", "scikit-image",
            "pynwb")


def package_version(name: str) -> str:
    """The installed version of a distribution, from its metadata (nothing imported), or "not installed"."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def package_versions() -> dict[str, str]:
    """{package: version} for Python and the packages that shape the results ("not installed" if absent)."""
    return {"python": platform.python_version(), **{name.replace("-", "_"): package_version(name) for name in PACKAGES}}


def versions_yaml(process: str) -> str:
    """nf-core style versions.yml text for one Nextflow process."""
    lines = [f'"{process}":'] + [f"    {name}: {version}" for name, version in package_versions().items()]
    return "\n".join(lines) + "\n"
