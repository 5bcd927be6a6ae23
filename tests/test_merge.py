"""MERGE and the extraction.h5 schema: fixtures are summary.h5 / segmentation.h5 / traces.h5 written directly with
h5py as docs/architecture.md describes them (independent of the other steps; the end-to-end test covers those)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import FRAMES, HEIGHT, REPO, WIDTH, make_plane, read_like_allen_tools, run_merge
from ophys_extraction import merge as merge_mod
from ophys_extraction import qc, schema, validation
from ophys_extraction.cli import main as dispatch
from ophys_extraction.cli.validate import main as validate_main


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Path]:
    """One plane (Cellpose label 3 dropped by suite2p) merged once; tests that modify it work on copies."""
    root = tmp_path_factory.mktemp("merged")
    paths = make_plane(root / "in")
    assert run_merge(paths, root / "out", "--plane_id", "plane_7", "--params_json", '{"bin_duration": 3.7}') == 0
    return paths, root / "out" / "extraction.h5"


def test_origin_follows_the_rois(tmp_path):
    """segmentation.h5's origin per label (functional detection) becomes rois/origin per ROI: label 3 was dropped."""
    paths = make_plane(tmp_path / "in")
    with h5py.File(paths["segmentation"], "a") as f:
        f[schema.LABEL_ORIGIN] = np.array([0, 0, 0, 0, 1, 1], np.int8)
    assert run_merge(paths, tmp_path / "out", "--plane_id", "p") == 0
    with h5py.File(tmp_path / "out" / "extraction.h5", "r") as f, h5py.File(paths["traces"], "r") as tr:
        assert tr["labels"][()].tolist() == [1, 2, 4, 5, 6]
        assert f[schema.ORIGIN][()].tolist() == [0, 0, 0, 1, 1]
    assert validation.validate(tmp_path / "out" / "extraction.h5") == []


def test_merged_file_passes_validation_and_keeps_the_data(merged):
    paths, out = merged
    assert validation.validate(out) == []
    with h5py.File(out, "r") as f, h5py.File(paths["traces"], "r") as tr, h5py.File(paths["summary"], "r") as sm:
        found: list[str] = []
        f.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
        # Every dataset of the schema, but those written later (iscell_original: by a curation) and rois/origin
        # (only with functional detection: test_origin_follows_the_rois).
        assert sorted(found) == sorted(spec.path for spec in schema.DATASETS
                                       if spec.source != schema.CURATION and spec.path != schema.ORIGIN)
        for path in ("traces/corrected", "traces/roi", "traces/neuropil", "rois/coords", "iscell",
                     "neuropil_coords", schema.RAW_RCOEF):
            np.testing.assert_array_equal(f[path][()], tr[path][()])
            assert f[path].dtype == tr[path].dtype
        np.testing.assert_array_equal(f["meanImg"][()], sm["meanImg"][()])
        assert f["traces/corrected"].compression == "gzip"
        assert f.attrs["plane_id"] == "plane_7"
        assert f.attrs["frame_rate"] == pytest.approx(10.71)
        params = json.loads(f.attrs["parameters"])
        assert params["pipeline"] == {"bin_duration": 3.7}
        assert params["segment"]["anatomical_only"] == 2
        assert params["extract"]["parameters"] == {"inner_neuropil_radius": 2, "min_neuropil_pixels": 350}
        assert params["summary_images"]["frame_rate"] == pytest.approx(10.71)
        versions = json.loads(f.attrs["versions"])
        assert versions["suite2p"] == "1.1.0" and versions["cellpose"] == "3.1.1.2"
        assert {"ophys_extraction", "torch", "numpy", "h5py"} <= set(versions)
        assert not any("time" in key or "date" in key for key in f.attrs)


def test_second_names_are_hard_links(merged):
    with h5py.File(merged[1], "r") as f:
        for link, target in schema.LINKS:
            assert f[link] == f[target]                                  # one object, two names
            assert h5py.h5o.get_info(f[target].id).rc == 2               # stored once, referenced twice
            assert isinstance(f.get(link, getlink=True), h5py.HardLink)


def test_baseline_flag_is_the_median_at_or_below_zero(merged):
    with h5py.File(merged[1], "r") as f:
        flags = f[schema.LOW_BASELINE][()]
        np.testing.assert_array_equal(flags, np.median(f["traces/corrected"][()], axis=1) <= 0)
    assert flags.dtype == np.bool_ and flags.tolist() == [False, True, False, False, False]


def test_read_as_the_allen_institute_tools_do(merged, tmp_path, monkeypatch):
    """<plane>_extraction.h5 is a few KB of links, valid, read as the Allen Institute's tools read it, and found
    beside itself from any working directory."""
    extraction = merged[1]
    alias = extraction.parent / "plane_7_extraction.h5"
    assert alias.stat().st_size < 16 * 1024 and validation.validate(alias) == []   # 6.7 KB measured 2026-12-02
    # Another extraction.h5 in the working directory must not be the one the links reach.
    (tmp_path / "extraction.h5").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    read_like_allen_tools(Path(os.path.relpath(alias, tmp_path)), extraction)


def test_validator_checks_the_link_file(tmp_path, merged):
    folder = tmp_path / "plane"
    shutil.copytree(merged[1].parent, folder)
    alias = folder / "plane_7_extraction.h5"
    with h5py.File(alias, "a") as f:
        del f["iscell"]
        f["extra"] = h5py.ExternalLink("other.h5", "/extra")
    problems = validation.validate(alias)
    assert "iscell: no link to extraction.h5:/iscell" in problems
    assert "extra: not an external link to extraction.h5:/extra" in problems
    renamed = folder / "plane_8_extraction.h5"
    shutil.copy(merged[1].parent / "plane_7_extraction.h5", renamed)
    assert validation.validate(renamed) == ["named plane_8_extraction.h5, but extraction.h5's plane_id gives "
                                        "plane_7_extraction.h5"]
    alone = tmp_path / "alone" / "plane_7_extraction.h5"
    alone.parent.mkdir()
    shutil.copy(merged[1].parent / "plane_7_extraction.h5", alone)
    assert validation.validate(alone) == ["links to extraction.h5, which is not beside it"]
    with h5py.File(folder / "extraction.h5", "a") as f:
        del f["traces/std"]
    shutil.copy(merged[1].parent / "plane_7_extraction.h5", alias)
    assert "extraction.h5: traces/std: missing dataset" in validation.validate(alias)


def test_masks_relabelled_when_suite2p_dropped_an_roi(merged):
    paths, out = merged
    with h5py.File(out, "r") as f, h5py.File(paths["segmentation"], "r") as seg:
        original = seg["cellpose/masks"][()]
        masks = f["cellpose/masks"][()]
        roi, y, x = f["rois/coords"][()]
    assert masks.max() == 5
    assert not np.any(masks[original == 3])                  # the dropped ROI is background now
    for new, old in enumerate([1, 2, 4, 5, 6], start=1):     # ROI i == label i+1
        np.testing.assert_array_equal(masks == new, original == old)
    np.testing.assert_array_equal(masks[y, x], roi + 1)


def test_zero_roi_plane_is_valid(tmp_path):
    paths = make_plane(tmp_path / "in", drop=(), n_labels=0)
    assert run_merge(paths, tmp_path / "out") == 0
    out = tmp_path / "out" / "extraction.h5"
    assert validation.validate(out) == []
    with h5py.File(out, "r") as f:
        assert f["traces/corrected"].shape == (0, FRAMES)
        assert f["rois/coords"].shape == (3, 0)
        assert f["iscell"].shape == (0, 2)
        assert not f["cellpose/masks"][()].any()
        assert f.attrs["plane_id"] == "plane_7"
    assert (tmp_path / "out" / "detected_ROIs.png").stat().st_size > 10_000


def test_all_rois_dropped_by_suite2p(tmp_path):
    paths = make_plane(tmp_path / "in", drop=(1, 2, 3), n_labels=3)
    assert run_merge(paths, tmp_path / "out") == 0
    with h5py.File(tmp_path / "out" / "extraction.h5", "r") as f:
        assert not f["cellpose/masks"][()].any()
    assert validation.validate(tmp_path / "out" / "extraction.h5") == []


@pytest.mark.parametrize("n_labels, drop, threshold, expected", [
    (3, (1, 2, 3), 0.0, "no ROIs: suite2p's ROI statistics (EXTRACT) dropped all 3 masks Cellpose found"),
    (0, (), 0.0, "pixels are above --cellprob_threshold 0, but Cellpose kept no mask from them at diameter 9.0 px"),
    (0, (), 100.0, "no ROIs: no pixel's cell probability is above --cellprob_threshold 100 (the highest is "),
    (5, (3,), 0.0, None),
])
def test_a_plane_without_rois_says_why(tmp_path, n_labels, drop, threshold, expected):
    """plane_summary.json's warnings say why a plane ended with no ROIs, from segmentation.h5's cell probability,
    masks and threshold; a plane with ROIs gets no such warning."""
    paths = make_plane(tmp_path / "in", drop=drop, n_labels=n_labels)
    with h5py.File(paths["segmentation"], "a") as f:
        f.attrs["cellprob_threshold"] = threshold
    summary = tmp_path / "plane_summary.json"
    assert run_merge(paths, tmp_path / "out", "--plane_summary", str(summary)) == 0
    found = [w for w in json.loads(summary.read_text())["warnings"] if "no ROIs" in w]
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and expected in found[0], found


def test_missing_input_dataset_fails_in_one_line_and_leaves_nothing(tmp_path):
    paths = make_plane(tmp_path / "in", omit=("iscell",))
    outdir = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(REPO / "bin" / "merge.py"), "--summary", str(paths["summary"]),
                           "--segmentation", str(paths["segmentation"]), "--traces", str(paths["traces"]),
                           "--outdir", str(outdir), "--plane_id", "p"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: ") and "traces.h5" in lines[0] and "iscell" in lines[0]
    assert not outdir.exists() or list(outdir.iterdir()) == []


@pytest.mark.parametrize("case", ["no_labels", "missing_input", "bad_params", "other_plane", "bad_labels"])
def test_bad_inputs_are_input_errors(tmp_path, case, capsys):
    paths = make_plane(tmp_path / "in")
    extra: list[str] = []
    if case == "no_labels":
        with h5py.File(paths["traces"], "a") as f:
            del f["labels"]
    elif case == "missing_input":
        paths["summary"].unlink()
    elif case == "bad_params":
        extra = ["--params_json", "{not json"]
    elif case == "other_plane":
        with h5py.File(paths["summary"], "a") as f:
            del f["meanImg"]
            f["meanImg"] = np.zeros((HEIGHT, WIDTH + 1), np.float32)
    elif case == "bad_labels":
        with h5py.File(paths["traces"], "a") as f:
            f["labels"][0] = 99
    with pytest.raises(merge_mod.InputError):
        run_merge(paths, tmp_path / "out", *extra)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    paths = make_plane(tmp_path / "in")

    def broken(*args, **kwargs):
        raise RuntimeError("figure failed")

    monkeypatch.setattr(qc, "render_detected_rois", broken)
    with pytest.raises(RuntimeError, match="figure failed"):
        run_merge(paths, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_inconsistent_inputs_fail_validation_before_the_rename(tmp_path):
    paths = make_plane(tmp_path / "in")
    with h5py.File(paths["traces"], "a") as f:   # one iscell row too few: dtype and rank are right, n_rois is not
        iscell = f["iscell"][()]
        del f["iscell"]
        f["iscell"] = iscell[:-1]
    with pytest.raises(merge_mod.SchemaError, match="inconsistent n_rois"):
        run_merge(paths, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_merge_is_deterministic(tmp_path, merged):
    paths, first = merged
    assert run_merge(paths, tmp_path / "again", "--plane_id", "plane_7", "--params_json",
                     '{"bin_duration": 3.7}') == 0
    second = tmp_path / "again" / "extraction.h5"
    with h5py.File(first, "r") as a, h5py.File(second, "r") as b:
        names: list[str] = []
        a.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        for name in names:
            assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape
            np.testing.assert_array_equal(a[name][()], b[name][()])
            assert a[name].compression == b[name].compression and a[name].chunks == b[name].chunks
        assert dict(a.attrs) == dict(b.attrs)
    assert (first.parent / "detected_ROIs.png").read_bytes() == (tmp_path / "again" / "detected_ROIs.png").read_bytes()


def test_plane_summary(tmp_path):
    paths = make_plane(tmp_path / "in")
    with h5py.File(paths["traces"], "a") as f:
        f.attrs["runtime_seconds"] = 12.0
    summary = tmp_path / "plane_summary.json"
    assert run_merge(paths, tmp_path / "out", "--plane_id", "p1", "--plane_summary", str(summary)) == 0
    row = json.loads(summary.read_text())
    assert {k: row[k] for k in ("plane", "frames", "rois", "cells")} == {"plane": "p1", "frames": FRAMES,
                                                                          "rois": 5, "cells": 3}
    assert row["runtime_seconds"] >= 12.0


def test_params_json_from_file(tmp_path):
    paths = make_plane(tmp_path / "in", drop=())
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"diameter": 0, "outdir": "results"}))
    assert run_merge(paths, tmp_path / "out", "--params_json", str(params)) == 0
    with h5py.File(tmp_path / "out" / "extraction.h5", "r") as f:
        assert json.loads(f.attrs["parameters"])["pipeline"] == {"diameter": 0, "outdir": "results"}


def test_figure_is_a_sensible_png(merged):
    import matplotlib.image

    png = merged[1].parent / "detected_ROIs.png"
    image = matplotlib.image.imread(png)
    height, width = image.shape[:2]
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert 1000 <= width <= 2500 and 600 <= height <= 2500
    assert image[..., :3].std() > 0.05     # not blank


def test_figure_of_a_full_size_plane(tmp_path):
    """512x512 with 500 ROIs and six 20,000-frame example traces renders (its time: bench/qc_figure.py)."""
    qc_figure = _bench_module("qc_figure")
    qc_figure.render_full_size_plane(tmp_path / "big.png")
    assert (tmp_path / "big.png").stat().st_size > 100_000


def _bench_module(name: str):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the validator: one broken file per problem kind ---------------------------------------------------------


def _break(f: h5py.File, case: str) -> None:
    def replace(path: str, value: np.ndarray) -> None:
        del f[path]
        f[path] = value

    if case == "missing dataset":
        del f["traces/std"]
    elif case == "extra dataset":
        f["labels"] = np.arange(5)
    elif case == "wrong dtype":
        replace("traces/corrected", f["traces/corrected"][()].astype(np.float64))
    elif case == "wrong shape":
        replace("iscell", np.zeros((5, 3), np.float32))
    elif case == "wrong rank":
        replace("meanImg", f["meanImg"][()][None])
    elif case == "inconsistent n_rois":
        replace("traces/skew", np.zeros(4, np.float32))
    elif case == "label mismatch":
        masks = f["cellpose/masks"][()]
        swapped = masks.copy()
        swapped[masks == 1], swapped[masks == 2] = 2, 1
        replace("cellpose/masks", swapped)
    elif case == "label beyond n_rois":
        masks = f["cellpose/masks"][()]
        masks[0, 0] = 6
        replace("cellpose/masks", masks)
    elif case == "coords out of range":
        coords = f["rois/coords"][()]
        coords[1, 0] = HEIGHT
        replace("rois/coords", coords)
    elif case == "roi index out of range":
        coords = f["neuropil_coords"][()]
        coords[0, -1] = 5
        replace("neuropil_coords", coords)
    elif case == "duplicate coords":
        coords = f["rois/coords"][()]
        coords[:, 1] = coords[:, 0]
        replace("rois/coords", coords)
    elif case == "npix mismatch":
        npix = f["rois/npix"][()]
        npix[2] += 1
        replace("rois/npix", npix)
    elif case == "iscell not 0/1":
        iscell = f["iscell"][()]
        iscell[0, 0] = 0.5
        replace("iscell", iscell)
    elif case == "iscell probability":
        iscell = f["iscell"][()]
        iscell[1, 1] = 1.5
        replace("iscell", iscell)
    elif case == "iscell_suite2p probability":
        iscell = f["iscell_suite2p"][()]
        iscell[1, 1] = -0.5
        replace("iscell_suite2p", iscell)
    elif case == "non-finite traces":
        f["traces/neuropil"][3, 17] = np.nan
    elif case == "rois/shape":
        f["rois/shape"][1] = HEIGHT + 1
    elif case == "rcoef range":
        f["neuropil_rcoef"][0] = 2.5
    elif case == "raw rcoef with suite2p":
        params = json.loads(f.attrs["parameters"])
        params["extract"]["use_suite2p_neuropil"] = True
        f.attrs["parameters"] = json.dumps(params)
    elif case == "missing versions":
        del f.attrs["versions"]
    elif case == "no suite2p version":
        f.attrs["versions"] = json.dumps({"cellpose": "3.1.1.2"})
    elif case == "missing plane_id":
        del f.attrs["plane_id"]
    elif case == "parameters not JSON":
        f.attrs["parameters"] = "{oops"
    elif case == "link missing":
        del f["traces/neuropil_rcoef"]
    elif case == "link is a copy":
        replace("rois/neuropil_coords", f["neuropil_coords"][()])
    elif case == "soft link":
        del f["traces/neuropil_rcoef"]
        f["traces/neuropil_rcoef"] = h5py.SoftLink("/neuropil_rcoef")
    elif case == "link without its dataset":
        del f[schema.RAW_RCOEF]
    elif case == "baseline flag disagrees":
        replace(schema.LOW_BASELINE, ~f[schema.LOW_BASELINE][()])
    else:
        raise AssertionError(case)


VALIDATOR_CASES = {
    "missing dataset": "traces/std: missing dataset",
    "extra dataset": "labels: unexpected dataset",
    "wrong dtype": "traces/corrected: dtype float64, expected float32",
    "wrong shape": "iscell: shape (5, 3), expected (n_rois, 2)",
    "wrong rank": "meanImg: rank 3",
    "inconsistent n_rois": "traces/skew: shape (4,) has n_rois=4",
    "label mismatch": "cellpose/masks: ",
    "label beyond n_rois": "cellpose/masks: labels outside 0..n_rois=5",
    "coords out of range": "rois/coords: 1 y value(s) out of range [0, 48)",
    "roi index out of range": "neuropil_coords: 1 roi index value(s) out of range [0, 5)",
    "duplicate coords": "rois/coords: duplicate",
    "npix mismatch": "rois/npix: differs",
    "iscell not 0/1": "iscell: column 0",
    "iscell probability": "iscell: column 1",
    "iscell_suite2p probability": "iscell_suite2p: column 1",
    "non-finite traces": "traces/neuropil: 1 non-finite",
    "rois/shape": "rois/shape: (5, 49, 64)",
    "rcoef range": "neuropil_rcoef: values outside [0, 2]",
    "raw rcoef with suite2p": f"{schema.RAW_RCOEF}: present",
    "missing versions": "attribute 'versions' is missing",
    "no suite2p version": "no suite2p version",
    "missing plane_id": "attribute 'plane_id' is missing",
    "parameters not JSON": "attribute 'parameters' is not valid JSON",
    "link missing": "traces/neuropil_rcoef: missing (a hard link to neuropil_rcoef)",
    "link is a copy": "rois/neuropil_coords: not a hard link to neuropil_coords",
    "soft link": "traces/neuropil_rcoef: soft or external link",
    "link without its dataset": f"traces/{schema.RAW_RCOEF}: present although {schema.RAW_RCOEF} is not",
    "baseline flag disagrees": f"{schema.LOW_BASELINE}: disagrees with the median of traces/corrected for 5 ROI(s)",
}


@pytest.mark.parametrize("case", sorted(VALIDATOR_CASES))
def test_validator_catches(tmp_path, merged, case):
    broken = tmp_path / "broken.h5"
    shutil.copy(merged[1], broken)
    with h5py.File(broken, "a") as f:
        _break(f, case)
    problems = validation.validate(broken)
    assert any(VALIDATOR_CASES[case] in p for p in problems), problems
    if case == "label mismatch":
        assert len(problems) == 2 and "ROI 0 expects label 1" in problems[0]   # both directions, nothing else


def test_validator_on_files_that_are_not_extraction_files(tmp_path):
    assert validation.validate(tmp_path / "nope.h5") == ["file does not exist"]
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    assert validation.validate(junk)[0].startswith("cannot be opened as HDF5")
    empty = tmp_path / "empty.h5"
    h5py.File(empty, "w").close()
    problems = validation.validate(empty)
    assert sum("missing dataset" in p for p in problems) == sum(spec.required for spec in schema.DATASETS)


def test_mutual_information_dataset_required_with_that_method(tmp_path, merged):
    broken = tmp_path / "broken.h5"
    shutil.copy(merged[1], broken)
    with h5py.File(broken, "a") as f:
        del f[schema.RAW_RCOEF]
    assert any("missing (required with the mutual-information" in p for p in validation.validate(broken))


def test_suite2p_neuropil_plane_without_raw_rcoef_is_valid(tmp_path):
    paths = make_plane(tmp_path / "in", mutual_info=False)
    assert run_merge(paths, tmp_path / "out") == 0
    with h5py.File(tmp_path / "out" / "extraction.h5", "r") as f:
        assert schema.RAW_RCOEF not in f


def test_validate_cli(tmp_path, merged, capsys):
    good = merged[1]
    bad = tmp_path / "bad.h5"
    shutil.copy(good, bad)
    with h5py.File(bad, "a") as f:
        del f["iscell"]
    assert validate_main([str(good)]) == 0
    assert capsys.readouterr().out.strip() == f"OK {good}"
    assert validate_main([str(good), str(bad)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"OK {good}", f"{bad}: iscell: missing dataset"]


def test_dispatcher(merged, capsys):
    assert dispatch(["validate", str(merged[1])]) == 0
    assert "OK" in capsys.readouterr().out
    assert dispatch(["--help"]) == 0
    assert "merge" in capsys.readouterr().out
    assert dispatch(["nonsense"]) == 2
    assert "unknown command 'nonsense'" in capsys.readouterr().err
    assert dispatch(["merge", "--summary", "x.h5", "--segmentation", "y.h5", "--traces", "z.h5",
                     "--outdir", "/tmp/never-written", "--plane_id", "p"]) == 2
    assert capsys.readouterr().err.startswith("ERROR: x.h5: summary file does not exist")
    assert dispatch(["merge", "--help"]) == 0
    from ophys_extraction.cli import COMMANDS
    import importlib
    for module, _ in COMMANDS.values():     # every dispatched module exists and has main(argv)
        assert callable(importlib.import_module(module).main)


def test_bin_scripts_are_thin_and_executable():
    for name in ("merge.py", "validate.py"):
        script = REPO / "bin" / name
        assert os.access(script, os.X_OK)
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env python3\n") and "run_cli(main)" in text
