"""Find the planes in an input directory and resolve each plane's frame rate (README, "Running it on your data").

main.nf mirrors `find_planes` in Groovy (so `-stub-run` needs no Python); tests/test_discovery_nextflow.py keeps
the two in agreement.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ophys_extraction.errors import InputError

ALLEN_PATTERNS = (("decrosstalk", "*decrosstalk.h5"), ("motion_correction", "*registered.h5"))


@dataclass(frozen=True)
class Plane:
    plane_id: str
    movie: Path


def _allen_movie(plane_dir: Path) -> Path | None:
    for sub, pattern in ALLEN_PATTERNS:
        found = sorted((plane_dir / sub).glob(pattern))
        if len(found) > 1:
            raise InputError(plane_dir / sub, f"more than one movie matches {pattern}: "
                                              f"{', '.join(p.name for p in found)}")
        if found:
            return found[0]
    return None


def find_planes(input_dir: str | Path) -> list[Plane]:
    """Planes of `input_dir`, sorted by id: Allen-style session folders if there are any, else plain *.h5 files."""
    input_dir = Path(input_dir)
    if not input_dir.exists():
        raise InputError(input_dir, "input directory does not exist")
    if not input_dir.is_dir():
        raise InputError(input_dir, "input path is not a directory")
    allen = [Plane(d.name, m) for d in sorted(input_dir.iterdir()) if d.is_dir() and (m := _allen_movie(d))]
    if allen:
        return allen
    plain = [Plane(p.stem, p) for p in sorted(input_dir.glob("*.h5")) if p.is_file()]
    if not plain:
        raise InputError(input_dir, "no movies found (expected <plane>/decrosstalk/*decrosstalk.h5, "
                                    "<plane>/motion_correction/*registered.h5 or *.h5)")
    return plain


def _rate_from_processing(doc: Any) -> Any:
    """`movie_frame_rate_hz` from the parameters of any data process, at the top level or under processing_pipeline."""
    if not isinstance(doc, dict):
        return None
    for holder in (doc, doc.get("processing_pipeline")):
        if isinstance(holder, dict):
            for process in holder.get("data_processes") or []:
                params = process.get("parameters") if isinstance(process, dict) else None
                if isinstance(params, dict) and params.get("movie_frame_rate_hz") is not None:
                    return params["movie_frame_rate_hz"]
    return None


def _rate_from_session(doc: Any) -> Any:
    """`data_streams[].ophys_fovs[0].frame_rate` of an Allen session.json."""
    if not isinstance(doc, dict):
        return None
    for stream in doc.get("data_streams") or []:
        fovs = stream.get("ophys_fovs") if isinstance(stream, dict) else None
        if fovs and isinstance(fovs[0], dict) and fovs[0].get("frame_rate") is not None:
            return fovs[0]["frame_rate"]
    return None


def check_frame_rate(value: Any, source: str | Path) -> float:
    """A frame rate as a positive finite float, or InputError naming where it came from."""
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise InputError(source, f"frame rate {value!r} is not a number") from None
    if not math.isfinite(rate) or rate <= 0:
        raise InputError(source, f"frame rate must be a positive number, got {value!r}")
    return rate


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot be read as JSON ({type(err).__name__}: {err})") from None


def resolve_frame_rate(movie: str | Path, frame_rate: float | None = None,
                       search_up_to: str | Path | None = None) -> float:
    """`frame_rate` if given; else processing.json then session.json, beside the movie or in a parent folder
    (up to `search_up_to`, default: the movie's grandparent, i.e. the session for Allen layouts)."""
    movie = Path(movie).resolve()
    if frame_rate is not None:
        return check_frame_rate(frame_rate, "--frame_rate")
    top = Path(search_up_to).resolve() if search_up_to else movie.parent.parent.parent
    folders = [movie.parent]
    while folders[-1] != top and folders[-1] != folders[-1].parent:
        folders.append(folders[-1].parent)
    for name, reader in (("processing.json", _rate_from_processing), ("session.json", _rate_from_session)):
        for folder in folders:
            candidate = folder / name
            if candidate.is_file():
                value = reader(_read_json(candidate))
                if value is not None:
                    return check_frame_rate(value, candidate)
    raise InputError(movie, "no frame rate: pass --frame_rate or put processing.json "
                            "(movie_frame_rate_hz) or session.json beside the movie")
