"""lib/PlaneFinder.groovy, the pipeline's only plane finder, through stub runs of the real Nextflow (stubs never read
the movies, so empty files do): both input forms (--input_dir layouts, --input samplesheet, local and over HTTP),
frame rates from every source, and the problems found at start, one line each, before any task.
tests/test_pipeline.py runs a samplesheet through the real steps."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import write_processing_json
from pipeline_runner import NEXTFLOW, run_pipeline, task_dirs

pytestmark = [pytest.mark.nextflow, pytest.mark.skipif(not NEXTFLOW.exists(), reason="run `make install` first")]


def _movie(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path


def _session_json(folder: Path, rate: object) -> None:
    (folder / "session.json").write_text(json.dumps(
        {"data_streams": [{"name": "behavior"}, {"ophys_fovs": [{"frame_rate": rate}, {"frame_rate": "1"}]}]}))


def _found(output: str) -> list[str]:
    """The `plane <id>: <movie> at <rate> Hz` lines the run logged, in their order."""
    return [line[line.index("plane "):] for line in output.splitlines() if line.endswith(" Hz") and "plane " in line]


def _allen(root: Path) -> list[str]:
    """Allen-style plane folders whose frame rates come from every supported source; returns the expected lines."""
    a = _movie(root / "100" / "decrosstalk" / "100_decrosstalk.h5")
    _movie(root / "100" / "motion_correction" / "100_registered.h5")  # decrosstalk wins
    write_processing_json(a.parent, 9.5, nested=True)
    b = _movie(root / "200" / "motion_correction" / "200_registered.h5")
    (b.parent.parent / "processing.json").write_text(json.dumps(  # in the plane folder, not nested, a string
        {"data_processes": [{"parameters": {}}, {"parameters": {"movie_frame_rate_hz": "11.25"}}]}))
    c = _movie(root / "300" / "decrosstalk" / "300_decrosstalk.h5")  # only the session's session.json
    d = _movie(root / "400" / "decrosstalk" / "400_decrosstalk.h5")
    write_processing_json(d.parent, 4, nested=False)  # processing.json beats session.json
    # A linked movie: the JSON files beside the link count, not those beside its target.
    target = _movie(root.parent / "elsewhere" / "real.h5")
    write_processing_json(target.parent, 99)
    e = root / "500" / "decrosstalk" / "500_decrosstalk.h5"
    e.parent.mkdir(parents=True)
    e.symlink_to(target)
    write_processing_json(e.parent.parent, 12)
    _session_json(root, "10.7")
    (root / "notes").mkdir()
    return [f"plane 100: {a} at 9.5 Hz", f"plane 200: {b} at 11.25 Hz", f"plane 300: {c} at 10.7 Hz",
            f"plane 400: {d} at 4.0 Hz", f"plane 500: {e} at 12.0 Hz"]


def _plain(root: Path) -> list[str]:
    zeta, alpha = _movie(root / "zeta.h5"), _movie(root / "alpha.h5")
    (root / "readme.txt").write_text("not a movie")
    write_processing_json(root, 30)
    return [f"plane alpha: {alpha} at 30.0 Hz", f"plane zeta: {zeta} at 30.0 Hz"]


@pytest.mark.parametrize("layout, args, rate", [("allen", (), None), ("plain", (), None),
                                                ("plain", ("--frame_rate", "7.5"), "7.5")])
def test_input_dir_layouts_and_frame_rates(tmp_path: Path, layout: str, args: tuple, rate: str | None) -> None:
    """Planes sorted by id; the frame rate from --frame_rate, else processing.json (both nestings, in the movie's
    folder or the plane folder), else session.json (a string); processing.json before session.json."""
    expected = (_allen if layout == "allen" else _plain)(tmp_path / "input")
    if rate:
        expected = [line[:line.rindex(" at ")] + f" at {float(rate)} Hz" for line in expected]
    run = run_pipeline(tmp_path / "launch", "-stub-run", "--input_dir", str(tmp_path / "input"), *args, timeout=300)
    assert run.returncode == 0, run.output
    assert _found(run.output) == expected
    for line in expected:
        assert (run.outdir / line.split(":")[0][len("plane "):] / "extraction" / "extraction.h5").is_file()


def test_input_dir_problems_are_reported_together(tmp_path: Path) -> None:
    """Two planes with two candidate movies each: both named, one line each, and no task."""
    for plane in ("p", "q"):
        _movie(tmp_path / "input" / plane / "decrosstalk" / "a_decrosstalk.h5")
        _movie(tmp_path / "input" / plane / "decrosstalk" / "b_decrosstalk.h5")
    run = run_pipeline(tmp_path / "launch", "-stub-run", "--input_dir", str(tmp_path / "input"), timeout=300)
    assert run.returncode == 1
    for plane in ("p", "q"):
        message = f"{tmp_path / 'input' / plane / 'decrosstalk'}: more than one movie matches *decrosstalk.h5"
        assert sum(message in line for line in run.output.splitlines()) == 1, run.output
    assert task_dirs(tmp_path / "launch") == []


def test_input_dir_that_is_a_file(tmp_path: Path) -> None:
    movie = _movie(tmp_path / "movie.h5")
    run = run_pipeline(tmp_path / "launch", "-stub-run", "--input_dir", str(movie), timeout=300)
    assert run.returncode == 1 and f"{movie}: input path is not a directory" in run.output, run.output


def test_frame_rate_problems_of_each_plane(tmp_path: Path) -> None:
    """With --skip_bad_planes every plane whose frame rate cannot be found is named with its reason; the good
    plane runs."""
    root = tmp_path / "input"
    cases = {"nothing": None, "zero": 0, "negative": -5, "text": "fast", "nan": "NaN", "inf": "Infinity",
             "good": 8}
    for plane, rate in cases.items():
        movie = _movie(root / plane / "decrosstalk" / f"{plane}_decrosstalk.h5")
        if rate is not None:
            write_processing_json(movie.parent, rate)
    _movie(root / "broken" / "decrosstalk" / "broken_decrosstalk.h5")
    (root / "broken" / "decrosstalk" / "processing.json").write_text("{not json")
    run = run_pipeline(tmp_path / "launch", "-stub-run", "--input_dir", str(root), "--skip_bad_planes",
                       "--allow_failed_planes", timeout=300)
    assert run.returncode == 0, run.output
    skipped = {line.split("Skipping plane ")[1].split(":")[0]: line for line in run.output.splitlines()
               if "Skipping plane " in line}
    assert sorted(skipped) == sorted(set(cases) - {"good"} | {"broken"})
    assert f"{root / 'nothing' / 'decrosstalk' / 'nothing_decrosstalk.h5'}: no frame rate: pass --frame_rate" in skipped["nothing"]
    # The rule of the schema's frame_rate entry (src/ophys_extraction/options.py FRAME_RATE), as the step's.
    for plane, problem in {"zero": "'0' must be > 0 (frames per second)",
                           "negative": "'-5' must be > 0 (frames per second)", "nan": "'NaN' must be a finite number",
                           "inf": "'Infinity' must be a finite number", "text": "'fast' must be a finite number"}.items():
        assert f"processing.json: frame rate {problem}" in skipped[plane], skipped[plane]
    assert "broken/decrosstalk/processing.json: cannot be read as JSON" in skipped["broken"]
    assert _found(run.output) == [f"plane good: {root / 'good' / 'decrosstalk' / 'good_decrosstalk.h5'} at 8.0 Hz"]


# ----------------------------------------------------------------------------------------------- samplesheet (--input)

# Ids a shell would split or expand, and one that needs CSV quoting (a comma and a quote).
SHEET_IDS = ['plane "A", first', "b $(touch PWNED)", "é日本"]


def _sheet_planes(root: Path) -> tuple[str, list[str]]:
    """Movies under `root` and a samplesheet text for them (a byte-order mark, \\r\\n line ends, a blank line,
    blanks around unquoted values, relative and absolute paths); returns (text, expected lines in sheet order)."""
    a = _movie(root / "movies" / "a.h5")
    b = _movie(root / "movies" / "b b.h5")
    write_processing_json(b.parent, 9)  # the rows without a frame_rate read it beside their movie
    c = _movie(root / "elsewhere" / "c.h5")
    _session_json(root / "elsewhere", 6)
    text = ("\ufeffplane_id,movie,frame_rate\r\n"
            '"plane ""A"", first",movies/a.h5,12.5\r\n'
            "\r\n"
            f" {SHEET_IDS[1]} , movies/b b.h5 ,\r\n"
            f"{SHEET_IDS[2]},{c},\r\n")
    return text, [f"plane {SHEET_IDS[0]}: {a} at 12.5 Hz", f"plane {SHEET_IDS[1]}: {b} at 9.0 Hz",
                  f"plane {SHEET_IDS[2]}: {c} at 6.0 Hz"]


def test_samplesheet_planes_in_its_order(tmp_path: Path) -> None:
    """Planes in the samplesheet's order, CSV quoting honoured, movies relative to the samplesheet's folder (the
    run starts elsewhere), frame rates from the column, else beside the movie; the ids reach their folders."""
    text, expected = _sheet_planes(tmp_path / "data")
    sheet = tmp_path / "data" / "samplesheet.csv"
    sheet.write_text(text, encoding="utf-8")
    run = run_pipeline(tmp_path / "launch", "-stub-run", "--input", str(sheet), timeout=300)
    assert run.returncode == 0, run.output
    assert _found(run.output) == expected
    for plane in SHEET_IDS:
        assert (run.outdir / plane / "extraction" / "extraction.h5").is_file(), plane
    assert not list(tmp_path.rglob("PWNED*"))


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(folder, its URL): a local HTTP server, a remote file system Nextflow reads without a plugin."""
    root = tmp_path / "served"
    root.mkdir()
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_samplesheet_over_http(tmp_path: Path, http_root: tuple[Path, str]) -> None:
    """A samplesheet on a remote file system: relative movies resolved on it, processing.json read beside a movie
    there, the movies staged into the tasks (s3:// takes the same path with Nextflow's nf-amazon plugin, which
    cannot be installed here); a missing remote movie is a problem at start."""
    root, url = http_root
    _movie(root / "movies" / "a.h5")
    write_processing_json(root / "movies", 9)
    _movie(root / "movies" / "b.h5")
    (root / "sheet.csv").write_text("plane_id,movie,frame_rate\np1,movies/a.h5,\np2,movies/b.h5,20\n")
    run = run_pipeline(tmp_path / "launch", "-stub-run", "--input", f"{url}/sheet.csv", timeout=300)
    assert run.returncode == 0, run.output
    assert _found(run.output) == [f"plane p1: {url}/movies/a.h5 at 9.0 Hz", f"plane p2: {url}/movies/b.h5 at 20.0 Hz"]
    staged = [d for d in task_dirs(tmp_path / "launch") if list((d / "movie").glob("[ab].h5"))]
    assert len(staged) == 4  # SUMMARY_IMAGES and EXTRACT of each plane
    assert all((run.outdir / plane / "extraction" / "extraction.h5").is_file() for plane in ("p1", "p2"))

    (root / "missing.csv").write_text("plane_id,movie\np1,movies/none.h5\n")
    run = run_pipeline(tmp_path / "launch2", "-stub-run", "--input", f"{url}/missing.csv", timeout=300)
    assert run.returncode == 1 and f"{url}/missing.csv line 2: movie {url}/movies/none.h5: file not found" in run.output
    assert task_dirs(tmp_path / "launch2") == []

    # A server that cannot be reached is said to be, with the reason (port 1: nothing listens there).
    (root / "unreachable.csv").write_text("plane_id,movie\np1,http://127.0.0.1:1/p1.h5\n")
    run = run_pipeline(tmp_path / "launch3", "-stub-run", "--input", f"{url}/unreachable.csv", timeout=300)
    assert run.returncode == 1, run.output
    assert (f"{url}/unreachable.csv line 2: movie http://127.0.0.1:1/p1.h5: unreachable (ConnectException: "
            "Connection refused)") in run.output, run.output
    assert task_dirs(tmp_path / "launch3") == []


def test_samplesheet_s3_movie_without_the_plugin_is_one_line(tmp_path: Path) -> None:
    """Here (offline, no nf-amazon) an s3:// movie cannot be opened: said on one line naming the row."""
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("plane_id,movie\np1,s3://bucket/session/p1.h5\n")
    run = run_pipeline(tmp_path / "launch", "-stub-run", "--input", str(sheet), timeout=300)
    assert run.returncode == 1
    assert f"{sheet} line 2: movie s3://bucket/session/p1.h5: cannot be opened (" in run.output, run.output
    assert "nf-amazon" in run.output and task_dirs(tmp_path / "launch") == []


def test_samplesheet_problems_one_line_each(tmp_path: Path) -> None:
    """Every row's problem at once, naming the samplesheet line, and no task started."""
    data = tmp_path / "data"
    _movie(data / "m.h5")
    rows = [
        ("good", "m.h5", ""),
        ("", "m.h5", ""),                      # line 3
        ("good", "m.h5", ""),                  # line 4: duplicate
        ("GOOD", "m.h5", ""),                  # line 5: same folder where case is ignored
        ("a/b", "m.h5", ""),                   # line 6
        ("..", "m.h5", ""),                    # line 7
        ("summary.json", "m.h5", ""),          # line 8
        ("gone", "absent.h5", ""),             # line 9
        ("slow", "m.h5", "fast"),              # line 10
        ("zero", "m.h5", "0"),                 # line 11
        ("nomovie", "", ""),                   # line 12
        ("folder", ".", ""),                   # line 13
        (".", "none.h5", "x"),                 # line 14: three problems
    ]
    text = "plane_id,movie,frame_rate\n" + "".join(",".join(row) + "\n" for row in rows) + "x,m.h5,1,extra\n"
    sheet = data / "sheet.csv"
    sheet.write_text(text)
    run = run_pipeline(tmp_path / "launch", "-stub-run", "--input", str(sheet), timeout=300)
    assert run.returncode == 1
    fix = "change it in the samplesheet"
    expected = [
        f"{sheet} line 9: movie {data / 'absent.h5'}: file not found",
        f"{sheet} line 10: frame rate 'fast' must be a finite number",
        f"{sheet} line 11: frame rate '0' must be > 0 (frames per second)",
        f"{sheet} line 12: no movie",
        f"{sheet} line 13: movie {data}: is not a file",
        f"{sheet} line 14: movie {data / 'none.h5'}: file not found",
        f"{sheet} line 14: frame rate 'x' must be a finite number",
        f"{sheet} line 14: plane id '.' cannot name an output folder",
        f"{sheet} line 15: 4 field(s), the header has 3",
        f"{sheet} line 3: plane id '' cannot name an output folder: {fix}",
        f"{sheet} line 4: plane id 'good' is also the id of {sheet} line 2: {fix}",
        f"{sheet} line 5: plane ids 'good' and 'GOOD' would share one output folder",
        f"{sheet} line 6: plane id 'a/b' contains '/'",
        f"{sheet} line 7: plane id '..' cannot name an output folder",
        f"{sheet} line 8: plane id 'summary.json' is the name of the pipeline's own output <outdir>/summary.json",
    ]
    errors = [line for line in run.output.splitlines() if "ERROR ~" in line or f"{sheet} line" in line]
    for message in expected:
        assert sum(message in line for line in errors) == 1, (message, run.output)
    assert task_dirs(tmp_path / "launch") == []


def test_the_same_movie_twice_is_refused_naming_both(tmp_path: Path) -> None:
    """Two samplesheet rows (here at 10 and 20 Hz, one path relative, one through a link) or two plane folders
    whose movies are one file: refused at start, one line naming both rows or folders, unless
    --allow_duplicate_movies."""
    data = tmp_path / "data"
    movie = _movie(data / "m.h5")
    _movie(data / "other.h5")
    (data / "link.h5").symlink_to(movie)
    sheet = data / "sheet.csv"
    sheet.write_text(f"plane_id,movie,frame_rate\np1,m.h5,10\np2,other.h5,10\np3,{movie},20\np4,link.h5,10\n")
    run = run_pipeline(tmp_path / "launch", "-stub-run", "--input", str(sheet), timeout=300)
    assert run.returncode == 1
    for plane, line in (("p3", 4), ("p4", 5)):
        message = (f"{sheet} line {line}: plane '{plane}' has the same movie as plane 'p1' ({sheet} line 2): "
                   f"{movie}; change it in the samplesheet, or pass --allow_duplicate_movies if that is meant")
        assert sum(message in out for out in run.output.splitlines()) == 1, run.output
    assert "plane 'p2'" not in run.output and task_dirs(tmp_path / "launch") == []
    run = run_pipeline(tmp_path / "launch2", "-stub-run", "--input", str(sheet), "--allow_duplicate_movies",
                       timeout=300)
    assert run.returncode == 0, run.output
    assert [line.split(":")[0] for line in _found(run.output)] == ["plane p1", "plane p2", "plane p3", "plane p4"]

    folders = tmp_path / "input"
    for plane in ("a", "b"):
        (folders / plane / "decrosstalk").mkdir(parents=True)
        (folders / plane / "decrosstalk" / f"{plane}_decrosstalk.h5").symlink_to(movie)
    run = run_pipeline(tmp_path / "launch3", "-stub-run", "--input_dir", str(folders), "--frame_rate", "10",
                       timeout=300)
    assert run.returncode == 1
    assert (f"{folders / 'b' / 'decrosstalk' / 'b_decrosstalk.h5'}: plane 'b' has the same movie as plane 'a' "
            f"({folders / 'a' / 'decrosstalk' / 'a_decrosstalk.h5'}): {movie}; rename it") in run.output, run.output
    assert task_dirs(tmp_path / "launch3") == []


@pytest.mark.parametrize("text, messages", [
    ("id,movie,movie,fps\np1,m.h5,m.h5,3\n", ["no column 'plane_id'", "unknown column 'id'", "unknown column 'fps'",
                                             "column 'movie' appears more than once"]),
    ("", ["samplesheet is empty"]),
    ("plane_id,movie\n", ["no planes (only a header line)"]),
    ('plane_id,movie\n"p1,m.h5\n', ["line 2: a quoted field is not closed"]),
])
def test_samplesheet_header_problems(tmp_path: Path, text: str, messages: list[str]) -> None:
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(text)
    run = run_pipeline(tmp_path / "launch", "-stub-run", "--input", str(sheet), timeout=300)
    assert run.returncode == 1
    for message in messages:
        assert f"{sheet}: {message}" in run.output, run.output
    assert task_dirs(tmp_path / "launch") == []


@pytest.mark.parametrize("given", ["both", "neither"])
def test_input_and_input_dir_exclude_each_other(tmp_path: Path, given: str) -> None:
    movie = _movie(tmp_path / "input" / "p.h5")
    (tmp_path / "sheet.csv").write_text(f"plane_id,movie\np,{movie}\n")
    args = ("--input", str(tmp_path / "sheet.csv"), "--input_dir", str(tmp_path / "input")) if given == "both" else ()
    run = run_pipeline(tmp_path / "launch", "-stub-run", "--frame_rate", "5", *args, timeout=300)
    assert run.returncode == 1
    reason = "not both" if given == "both" else "neither was given"
    assert f"give the planes either as --input_dir <folder> or as --input <samplesheet.csv>, {reason}" in run.output
    assert task_dirs(tmp_path / "launch") == []
