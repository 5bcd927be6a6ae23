"""Cell diameter estimation for `--diameter 0` (sizing.py): the size-model regression, its file, and the search for
the least flow error. The real Cellpose estimates on held-out planes are in test_segmentation.py."""

from __future__ import annotations

import numpy as np
import pytest

from ophys_extraction import sizing
from ophys_extraction.errors import InputError


def test_size_model_predicts_cellposes_regression_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    model = sizing.SizeModel(A=rng.normal(0, 0.1, 256), smean=rng.normal(0, 1, 256), diam_mean=12.0, ymean=0.3)
    style = rng.normal(0, 1, 256)
    expected = np.exp(model.A @ (style - model.smean) + np.log(12.0) + 0.3)
    assert model.predict(style) == pytest.approx(max(5.0, expected))
    # Never below Cellpose's floor of 5 px.
    assert sizing.SizeModel(A=np.zeros(256), smean=np.zeros(256), diam_mean=12.0, ymean=-5.0).predict(style) == 5.0
    path = tmp_path / "model_size.npy"
    model.save(path)
    loaded = sizing.SizeModel.load(path)
    assert loaded.predict(style) == pytest.approx(model.predict(style))


def test_size_model_file_is_cellposes_name(tmp_path):
    assert sizing.size_model_file(tmp_path / "ophys_cp3") == tmp_path / "ophys_cp3_size.npy"


@pytest.mark.parametrize("content", [b"not numpy", None])
def test_a_bad_size_model_file_is_one_clear_error(tmp_path, content):
    path = tmp_path / "m_size.npy"
    if content is None:
        np.save(path, {"A": np.zeros(256), "smean": np.zeros(3), "diam_mean": 12.0, "ymean": 0.0})
    else:
        path.write_bytes(content)
    with pytest.raises(InputError) as err:
        sizing.SizeModel.load(path)
    assert str(path) in str(err.value) and "size model" in str(err.value)


def peaked(centre: float, calls: list[float] | None = None):
    """What a model finds at each diameter when it segments best at `centre`: 100 masks, consistent in proportion
    to how close (in log diameter) the candidate is; records the diameters it is asked for."""
    def evaluate(d: float) -> sizing.Found:
        if calls is not None:
            calls.append(d)
        return sizing.Found(100, 100 * float(np.exp(-((np.log(d) - np.log(centre)) / 0.3) ** 2)))
    return sizing.one_at_a_time(evaluate)


def test_found_weighs_each_mask_by_its_flow_error_and_the_quality_is_an_f1():
    found = sizing.Found.from_flow_errors(np.array([0.0, 0.4, 0.8, 1.2]))
    assert found == sizing.Found(4, 1.5)                      # 1 + 0.5 (Cellpose's default threshold) + 0 + 0
    assert sizing.label_free_f1(found, 1.5) == pytest.approx(2 * 1.5 / 5.5)
    assert sizing.label_free_f1(sizing.Found(10, 10.0), 10.0) == 1.0
    assert sizing.label_free_f1(sizing.Found(0, 0.0), 0.0) == 0.0
    # Over-segmenting (more masks, as many consistent) and finding few (fewer consistent) both score lower.
    assert sizing.label_free_f1(sizing.Found(200, 80.0), 80.0) < sizing.label_free_f1(sizing.Found(100, 80.0), 80.0)
    assert sizing.label_free_f1(sizing.Found(20, 20.0), 80.0) < sizing.label_free_f1(sizing.Found(100, 80.0), 80.0)


@pytest.mark.parametrize("start", [5.5, 9.0, 14.0, 30.0])
def test_search_walks_from_its_start_to_the_least_quality(start):
    calls: list[float] = []
    diameter, seen = sizing.search(peaked(14.0, calls), (start,))
    assert diameter == pytest.approx(14.0, rel=0.03)
    assert len(calls) == len(set(calls)) == len(seen)         # a step there and back is not evaluated twice
    assert len(seen) <= 1 + sizing.MAX_STEPS + 2


def test_a_fine_probe_that_brackets_the_peak_spares_the_next_coarse_step():
    """Stepping down from 12 px to a peak at 8.2 px: after the coarse step to 8.5 px, the fine probe at 7.1 px is worse,
    so the next coarse step (6 px, the costliest candidate: the network sees the crop magnified 2x) is not run;
    the probe is one of the two fine steps, so the search ends after 5 evaluations where it took 6 before."""
    calls: list[float] = []
    diameter, seen = sizing.search(peaked(8.2, calls), (12.0,))
    down = round(12.0 / sizing.COARSE_STEP, 3)
    assert round(down / sizing.COARSE_STEP, 3) not in seen and round(down / sizing.FINE_STEP, 3) in seen
    assert len(calls) == len(set(calls)) == len(seen) == 5
    assert diameter == pytest.approx(8.2, rel=0.03)


def test_a_candidate_reached_by_two_routes_is_evaluated_once():
    """A probe (coarse step, then a fine one) and a fine step from the next coarse step name the same diameter up
    to rounding: the search runs it once. Starts whose probes and fine steps round apart, peak far below them."""
    for start in np.linspace(9.0, 30.0, 40):
        calls: list[float] = []
        sizing.search(peaked(float(start) / 3, calls), (float(start),))
        assert all(abs(a / b - 1) >= 1e-3 for i, a in enumerate(calls) for b in calls[:i]), (start, calls)


def test_search_takes_the_larger_diameter_where_the_quality_is_flat():
    # 100 masks; all consistent from 10 to 16 px, fewer outside: a plateau the larger end of which is chosen.
    def flat(d: float) -> sizing.Found:
        return sizing.Found(100, 100.0 if 10 <= d <= 16 else 60.0)
    diameter, seen = sizing.search(sizing.one_at_a_time(flat), (10.0,))
    assert round(10.0 * sizing.COARSE_STEP, 3) in seen and diameter == pytest.approx(10.0 * sizing.COARSE_STEP, abs=1e-3)
    # ... but a smaller diameter is taken only where it is better by more than PLATEAU.
    diameter, _ = sizing.search(sizing.one_at_a_time(lambda d: sizing.Found(100, 100.0 - 0.1 * d)), (12.0,))
    assert diameter > 12.0


def test_search_from_several_starts_begins_at_the_best_and_stays_in_bounds():
    diameter, seen = sizing.search(peaked(40.0), sizing.SCAN_DIAMETERS, upper=30.0)
    assert {round(d, 3) for d in sizing.SCAN_DIAMETERS[:-1]} <= set(seen) and max(seen) == 30.0
    assert diameter == 30.0                                   # the bound, where the quality is highest
    diameter, _ = sizing.search(peaked(3.0), (8.0,))
    assert diameter == sizing.MIN_DIAMETER


def test_search_asks_for_the_starts_together_then_each_coarse_step_then_both_fine_steps():
    batches: list[tuple[float, ...]] = []
    one = peaked(14.0)

    def evaluate(diameters: tuple[float, ...]) -> tuple[sizing.Found, ...]:
        batches.append(diameters)
        return one(diameters)
    together, seen = sizing.search(evaluate, sizing.SCAN_DIAMETERS)
    assert batches[0] == tuple(round(d, 3) for d in sizing.SCAN_DIAMETERS)
    assert all(len(b) == 1 for b in batches[1:-1]) and len(batches[-1]) == 2
    # The same candidates and choice as one at a time (the order of evaluation does not change the search).
    alone, seen_alone = sizing.search(peaked(14.0), sizing.SCAN_DIAMETERS)
    assert together == alone and seen == seen_alone


def test_search_where_no_candidate_finds_a_mask_keeps_the_start():
    diameter, seen = sizing.search(sizing.one_at_a_time(lambda d: sizing.Found(0, 0.0)), (11.0,))
    assert diameter == 11.0 and set(seen.values()) == {0.0}
    assert len(seen) <= 3                     # the start and one step each way: no walk through empty candidates


def test_parabola_peak_between_the_neighbours_of_the_centre():
    values = {10.0: 0.2, 12.0: 1.0, 14.0: 0.5}
    x = sizing.parabola_peak(values, 12.0)
    assert 12.0 < x < 14.0                                              # towards the higher neighbour
    assert sizing.parabola_peak(values, 10.0) == 10.0                   # at an end: itself
    assert sizing.parabola_peak({10.0: 0.5, 12.0: 0.2, 14.0: 0.5}, 12.0) == 12.0   # curving up: itself
