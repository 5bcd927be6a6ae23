"""Plane discovery (both layouts of README, "Running it on your data") and frame-rate resolution."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import write_h5, write_processing_json
from ophys_extraction.discovery import find_planes, resolve_frame_rate
from ophys_extraction.errors import InputError

MOVIE = np.zeros((2, 4, 4), np.int16)


def test_allen_layout_prefers_decrosstalk_and_uses_folder_names(tmp_path: Path) -> None:
    write_h5(tmp_path / "1001" / "decrosstalk" / "1001_decrosstalk.h5", MOVIE)
    write_h5(tmp_path / "1001" / "motion_correction" / "1001_registered.h5", MOVIE)
    write_h5(tmp_path / "1002" / "motion_correction" / "1002_registered.h5", MOVIE)
    (tmp_path / "notes").mkdir()
    planes = find_planes(tmp_path)
    assert [p.plane_id for p in planes] == ["1001", "1002"]
    assert planes[0].movie.name == "1001_decrosstalk.h5"
    assert planes[1].movie.name == "1002_registered.h5"


def test_plain_files_layout_uses_stems(tmp_path: Path) -> None:
    write_h5(tmp_path / "b_plane.h5", MOVIE)
    write_h5(tmp_path / "a_plane.h5", MOVIE)
    (tmp_path / "readme.txt").write_text("x")
    assert [(p.plane_id, p.movie.name) for p in find_planes(tmp_path)] == [("a_plane", "a_plane.h5"),
                                                                           ("b_plane", "b_plane.h5")]


def test_missing_input_dir(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="input directory does not exist"):
        find_planes(tmp_path / "absent")


def test_input_is_a_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a directory"):
        find_planes(write_h5(tmp_path / "m.h5", MOVIE))


def test_empty_input_dir(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no movies found"):
        find_planes(tmp_path)


def test_two_candidate_movies_are_ambiguous(tmp_path: Path) -> None:
    write_h5(tmp_path / "p" / "decrosstalk" / "a_decrosstalk.h5", MOVIE)
    write_h5(tmp_path / "p" / "decrosstalk" / "b_decrosstalk.h5", MOVIE)
    with pytest.raises(InputError, match="more than one movie"):
        find_planes(tmp_path)


def test_frame_rate_parameter_wins(tmp_path: Path) -> None:
    movie = write_h5(tmp_path / "p" / "decrosstalk" / "p_decrosstalk.h5", MOVIE)
    write_processing_json(movie.parent, 11.0)
    assert resolve_frame_rate(movie, frame_rate=30.0) == 30.0


@pytest.mark.parametrize("nested", [True, False])
def test_frame_rate_from_processing_json_both_nestings(tmp_path: Path, nested: bool) -> None:
    movie = write_h5(tmp_path / "p" / "decrosstalk" / "p_decrosstalk.h5", MOVIE)
    write_processing_json(movie.parent, 9.48, nested=nested)
    assert resolve_frame_rate(movie) == pytest.approx(9.48)


def test_frame_rate_from_processing_json_in_plane_folder(tmp_path: Path) -> None:
    movie = write_h5(tmp_path / "p" / "motion_correction" / "p_registered.h5", MOVIE)
    write_processing_json(tmp_path / "p", 6.0)
    assert resolve_frame_rate(movie) == 6.0


def test_frame_rate_from_session_json_as_string(tmp_path: Path) -> None:
    movie = write_h5(tmp_path / "p" / "decrosstalk" / "p_decrosstalk.h5", MOVIE)
    (tmp_path / "session.json").write_text(json.dumps(
        {"data_streams": [{"name": "behavior"}, {"ophys_fovs": [{"frame_rate": "10.71"}, {"frame_rate": "1"}]}]}))
    assert resolve_frame_rate(movie) == pytest.approx(10.71)


def test_processing_json_beats_session_json(tmp_path: Path) -> None:
    movie = write_h5(tmp_path / "p" / "decrosstalk" / "p_decrosstalk.h5", MOVIE)
    (tmp_path / "session.json").write_text(json.dumps({"data_streams": [{"ophys_fovs": [{"frame_rate": 3}]}]}))
    write_processing_json(movie.parent, 4.0)
    assert resolve_frame_rate(movie) == 4.0


def test_frame_rate_missing(tmp_path: Path) -> None:
    movie = write_h5(tmp_path / "session" / "p.h5", MOVIE)
    with pytest.raises(InputError, match="no frame rate") as err:
        resolve_frame_rate(movie)
    assert str(movie) in str(err.value)


@pytest.mark.parametrize("bad", [0, -5, "fast", float("nan"), float("inf")])
def test_bad_frame_rate_values(tmp_path: Path, bad: object) -> None:
    movie = write_h5(tmp_path / "p" / "decrosstalk" / "p_decrosstalk.h5", MOVIE)
    write_processing_json(movie.parent, bad)
    with pytest.raises(InputError, match="processing.json"):
        resolve_frame_rate(movie)
    with pytest.raises(InputError, match="--frame_rate"):
        resolve_frame_rate(movie, frame_rate=bad)  # type: ignore[arg-type]


def test_unreadable_processing_json(tmp_path: Path) -> None:
    movie = write_h5(tmp_path / "p" / "decrosstalk" / "p_decrosstalk.h5", MOVIE)
    (movie.parent / "processing.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot be read as JSON"):
        resolve_frame_rate(movie)
