"""Training script: input checks and the training log's record of where a continued model comes from (the
training itself is minutes to hours of CPU and never runs in tests: see the bundled model's training log)."""

from __future__ import annotations

import pytest

from ophys_extraction.cli.train_model import main as train_main
from ophys_extraction.errors import EXIT_BAD_INPUT, run_cli
from ophys_extraction.training.calibration import best_offset
from ophys_extraction.training.record import origin


def test_missing_init_model_is_one_clear_line(tmp_path, capsys):
    missing = tmp_path / "no_such_model"
    with pytest.raises(SystemExit) as exc:
        run_cli(train_main, ["--output", str(tmp_path / "m"), "--init_model", str(missing)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exc.value.code == EXIT_BAD_INPUT
    assert len(err) == 1 and str(missing) in err[0] and "not found" in err[0], err
    assert not (tmp_path / "m").exists()


def test_origin_names_every_run_of_a_continued_model():
    first = {"epochs": 250, "command_line": "bin/train_model.py --n_epochs 250", "init_model": None}
    second = {"epochs": 100, "command_line": "bin/train_model.py --init_model a", "init_model": "a",
              "init_model_log": first}
    third = {"init_model": "b", "init_model_log": second}
    assert origin(first) == "scratch"
    assert origin(third) == ("b (100 epochs: bin/train_model.py --init_model a) <- a (250 epochs: "
                              "bin/train_model.py --n_epochs 250) <- scratch")
    assert origin({"init_model": "c"}) == "c (? epochs: no training log beside it) <- scratch"


def test_best_offset_takes_the_highest_f1_and_breaks_ties_towards_no_shift():
    table = [{"offset": o, "mean_f1": f} for o, f in ((1.0, 0.6104), (-1.0, 0.50), (0.0, 0.55), (0.5, 0.609),
                                                      (-0.5, 0.61))]
    assert best_offset(table) == -0.5                       # 0.61 twice (to 3 decimals): the smaller |offset|
    assert best_offset([{"offset": 1.0, "mean_f1": 0.3}, {"offset": -1.0, "mean_f1": 0.4}]) == -1.0


def test_code_version_names_the_checkout_commit():
    import re
    from ophys_extraction.training.record import code_version
    version = code_version()
    assert version == "unknown" or re.fullmatch(r"[0-9a-f]{7,40}(\+changes)?", version), version
