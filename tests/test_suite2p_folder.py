"""The suite2p folder (--suite2p_folder, `ophys-extraction export-suite2p`): read back by suite2p 1.1's own readers,
the GUI's (`suite2p.gui.io.load_files`, what File > Load processed data calls) and `suite2p.io.combined` (the GUI's
"load folder"), and opened by suite2p's GUI itself, headless (Qt's offscreen platform, no X server), where a ROI is
flipped and saved by the GUI's own code and the curation goes back into extraction.h5.

The extraction.h5 files are MERGE's output on conftest's fixture planes (make_plane; the demo end to end is in
test_pipeline)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import REPO, gui_io, merged_plane_output
from ophys_extraction.cli import main as dispatch
from ophys_extraction.errors import InputError
from ophys_extraction.suite2p_folder import FILES, Suite2pFolderOptions, deconvolve, snr, write_folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(extraction.h5, its suite2p/plane0 folder written by the CLI with its defaults)."""
    root = tmp_path_factory.mktemp("suite2p")
    extraction = merged_plane_output(root)
    assert dispatch(["export-suite2p", str(root / "plane_7")]) == 0
    return extraction, root / "plane_7" / "suite2p" / "plane0"


def test_the_folder_has_suite2ps_files_equal_to_extraction_h5(exported) -> None:
    extraction, folder = exported
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]   # no temporary left
    # what a later run compares the GUI's iscell.npy with (lib/PlaneOutputs.groovy), in sha256sum's format
    assert (folder / "iscell.npy.sha256").read_text() == (
        f"{hashlib.sha256((folder / 'iscell.npy').read_bytes()).hexdigest()}  iscell.npy\n")
    stat = np.load(folder / "stat.npy", allow_pickle=True)
    with h5py.File(extraction, "r") as f:
        n_rois = f["traces/corrected"].shape[0]
        assert len(stat) == n_rois == 5
        roi, ys, xs = f["rois/coords"][()]
        for i, entry in enumerate(stat):
            np.testing.assert_array_equal(entry["ypix"], ys[roi == i])
            np.testing.assert_array_equal(entry["xpix"], xs[roi == i])
            np.testing.assert_array_equal(entry["lam"], f["rois/data"][()][roi == i])
            np.testing.assert_array_equal(entry["overlap"], f["rois/overlap"][()][roi == i].astype(bool))
            assert entry["med"] == list(f["rois/med"][i].astype(float))
            for name in ("npix", "compact", "aspect_ratio", "radius", "solidity", "npix_norm"):
                assert entry[name] == f[f"rois/{name}"][i], name
            assert entry["skew"] == f["traces/skew"][i] and entry["std"] == f["traces/std"][i]
            assert entry["iplane"] == 0
        for name, path in (("F", "traces/roi"), ("Fneu", "traces/neuropil")):
            np.testing.assert_array_equal(np.load(folder / f"{name}.npy"), f[path][()])
        np.testing.assert_array_equal(np.load(folder / "iscell.npy"), f["iscell"][()])
        ops = np.load(folder / "ops.npy", allow_pickle=True).item()
        assert (ops["Ly"], ops["Lx"], ops["nframes"]) == (48, 64, 4000)
        assert ops["fs"] == pytest.approx(10.71) and ops["tau"] == 1.0 and ops["diameter"] == [9.0, 9.0]
        np.testing.assert_array_equal(ops["meanImg"], f["meanImg"][()])
        np.testing.assert_array_equal(ops["max_proj"], f["maxImg"][()])
        np.testing.assert_array_equal(ops["Vcorr"], f["meanImg"][()])          # mode 2 segments the mean image
        assert ops["yrange"] == [0, 48] and ops["xrange"] == [0, 64]
        assert ops["extraction"]["inner_neuropil_radius"] == 2 and ops["save_path"] == str(folder)


def test_spks_is_suite2ps_own_deconvolution_of_the_corrected_traces(exported) -> None:
    import torch
    from suite2p.extraction import oasis, preprocess

    extraction, folder = exported
    spks = np.load(folder / "spks.npy")
    with h5py.File(extraction, "r") as f:
        corrected, fs = f["traces/corrected"][()], float(f.attrs["frame_rate"])
    # As suite2p 1.1's pipeline calls it (pipeline_s2p: preprocess with dcnv_preprocess, then oasis with tau).
    expected = oasis(preprocess(corrected.copy(), baseline="maximin", win_baseline=60.0, sig_baseline=10.0, fs=fs,
                                prctile_baseline=8.0, batch_size=500, device=torch.device("cpu")),
                     batch_size=500, tau=1.0, fs=fs)
    np.testing.assert_array_equal(spks, expected)
    assert spks.dtype == np.float32 and spks.shape == corrected.shape and spks.min() >= 0 and spks.max() > 0
    np.testing.assert_array_equal(deconvolve(corrected, fs, 1.0), spks)                 # deterministic
    assert not np.array_equal(deconvolve(corrected, fs, 0.5), spks)                    # tau matters
    assert np.isnan(snr(np.ones((1, 10)))).all()                                        # a flat trace: NaN


def test_suite2ps_gui_reader_loads_it(exported) -> None:
    """suite2p.gui.io.load_files: what File > Load processed data runs on stat.npy."""
    io = gui_io()
    extraction, folder = exported
    loaded = io.load_files(str(folder / "stat.npy"))
    assert loaded is not None, "suite2p's reader refused the folder"
    stat, ops, F, Fneu, spks, iscell, probcell, redcell, probredcell, hasred = loaded
    with h5py.File(extraction, "r") as f:
        np.testing.assert_array_equal(F, f["traces/roi"][()])
        np.testing.assert_array_equal(Fneu, f["traces/neuropil"][()])
        np.testing.assert_array_equal(iscell, f["iscell"][()][:, 0].astype(bool))
        np.testing.assert_array_equal(probcell, f["iscell"][()][:, 1])
    assert len(stat) == 5 and spks.shape == F.shape and ops["Ly"] == 48 and not hasred


def test_suite2ps_folder_reader_combines_it(exported, tmp_path: Path) -> None:
    """suite2p.io.combined: the GUI's "load folder" (every planeX folder of a suite2p folder), which reads the
    suite2p 1.1 files db.npy, settings.npy, reg_outputs.npy and detect_outputs.npy."""
    import suite2p.io

    extraction, folder = exported
    copy = tmp_path / "suite2p"
    shutil.copytree(folder.parent, copy)
    stat, db, settings, F, Fneu, spks, iscell, probcell = suite2p.io.combined(str(copy), save=False)[:8]
    with h5py.File(extraction, "r") as f:
        np.testing.assert_array_equal(F, f["traces/roi"][()])
        np.testing.assert_array_equal(iscell, f["iscell"][()][:, 0])
        np.testing.assert_array_equal(db["meanImg"], f["meanImg"][()])
    assert len(stat) == 5 and (db["Ly"], db["Lx"]) == (48, 64) and settings["tau"] == 1.0


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # suite2p's and pyqtgraph's own casts (NaN colour scales)
def test_suite2ps_gui_opens_it_and_its_curation_comes_back(exported, tmp_path: Path) -> None:
    """The GUI itself (suite2p.gui.gui2p.MainWindow), headless: it loads the folder; a ROI flipped with the GUI's
    own code (masks.flip_plot, which saves iscell.npy with io.save_iscell) goes back with apply-curation."""
    gui_io()
    from suite2p.gui import gui2p, masks

    extraction, folder = exported
    plane = tmp_path / "plane_7"
    shutil.copytree(extraction.parent.parent, plane)
    window = gui2p.MainWindow(statfile=str(plane / "suite2p" / "plane0" / "stat.npy"))
    try:
        assert window.loaded and len(window.stat) == 5
        with h5py.File(extraction, "r") as f:
            before = f["iscell"][()]
        assert window.lcell0.text() == str(int(before[:, 0].sum()))
        assert window.views.shape == (7, 48, 64, 3) and window.views[3].max() > 0    # Vcorr: the Cellpose input
        window.ichosen, window.imerge = 1, [1]
        masks.flip_plot(window)                     # the GUI's own flip; it saves iscell.npy
    finally:
        window.close()
    saved = np.load(plane / "suite2p" / "plane0" / "iscell.npy")
    assert saved[1, 0] == 1 - before[1, 0]
    assert dispatch(["apply-curation", str(plane)]) == 0
    with h5py.File(plane / "extraction" / "extraction.h5", "r") as f:
        np.testing.assert_array_equal(f["iscell"][()], saved)
        np.testing.assert_array_equal(f["iscell_original"][()], before)


def test_zero_roi_plane_and_an_explicit_folder(tmp_path: Path) -> None:
    extraction = merged_plane_output(tmp_path, n_labels=0, drop=())
    folder = tmp_path / "elsewhere" / "plane0"
    assert dispatch(["export-suite2p", str(extraction), "--folder", str(folder), "--tau", "0.7"]) == 0
    assert len(np.load(folder / "stat.npy", allow_pickle=True)) == 0
    assert np.load(folder / "F.npy").shape == np.load(folder / "spks.npy").shape == (0, 4000)
    assert np.load(folder / "ops.npy", allow_pickle=True).item()["tau"] == 0.7
    # Written again, the folder is replaced whole.
    (folder / "stray.npy").write_bytes(b"")
    write_folder(extraction, folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)


def test_bad_input_is_one_line(tmp_path: Path, exported, capsys) -> None:
    extraction, _ = exported
    assert dispatch(["export-suite2p", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.strip() == (f"ERROR: {tmp_path / 'nothing'}: no extraction.h5 here (give a plane's "
                                               "output folder <outdir>/<plane>, its extraction/ folder or the file)")
    with pytest.raises(InputError, match=r"^--tau 0: must be > 0 \(suite2p: seconds"):
        write_folder(extraction, tmp_path / "out", Suite2pFolderOptions(tau=0))
    assert dispatch(["export-suite2p", str(extraction), "--folder", str(tmp_path / "out"), "--tau", "-1"]) == 2
    assert capsys.readouterr().err.startswith("ERROR: --tau -1.0: must be > 0 (suite2p: seconds")
    broken = tmp_path / "broken" / "extraction.h5"
    broken.parent.mkdir()
    shutil.copy(extraction, broken)
    with h5py.File(broken, "a") as f:
        del f["iscell"]
    assert dispatch(["export-suite2p", str(broken)]) == 2
    assert "not a valid extraction.h5" in capsys.readouterr().err
    assert not (tmp_path / "broken" / "suite2p").exists() and not (tmp_path / "out").exists()


def test_bin_script_is_thin_and_executable() -> None:
    script = REPO / "bin" / "export_suite2p.py"
    assert os.access(script, os.X_OK) and "run_cli(main)" in script.read_text()
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--tau" in out.stdout and "--folder" in out.stdout
