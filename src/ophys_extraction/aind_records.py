"""Processing records for AIND's pipeline (aind-pophys-pipeline), built with aind-data-schema 2.x's own models.

* Per plane, `<plane>_extraction_data_process.json` (MERGE): one `DataProcess` (AIND's extraction step writes
  `<plane>_extraction_data_process.json` too; their aggregator collects `*_data_process.json` into
  processing.json): process type "Video ROI timeseries extraction", stage Processing, the code (name, version,
  URL, language, suite2p as its core dependency, the movie as its input data, extraction.h5's `parameters` as its
  parameters), start (SUMMARY_IMAGES' start, summary.h5's `started_at`) and end time (MERGE's end), the output
  path `<plane>/extraction` (relative to the output folder) and the plane's counts as output parameters.
* Per run, `quality_control.json` (SESSION_SUMMARY): one `QualityControl` with, for each plane, the metrics
  summary.json has (ROIs, cells, ROIs whose corrected trace has its baseline at or below zero, warnings), or for a
  failed plane its error; each with an automatic status (`metric_status`) and tags `plane` and `evaluation`.

aind-data-schema is optional at run time: without it `missing()` says why, and the steps write everything else.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

CODE_NAME = "ophys-extraction"
DATA_PROCESS_SUFFIX = "_extraction_data_process.json"
QUALITY_CONTROL_JSON = "quality_control.json"
EVALUATOR = "Automated (ophys-extraction)"
FIGURE = "extraction/detected_ROIs.png"
# summary.json's per-plane counts as QC metrics: (column, metric name, description with the status rule).
COUNT_METRICS = (
    ("rois", "ROIs", "ROIs in extraction.h5. Pass when there is at least one, else Pending (review the plane's "
                     "warnings: why it has none)."),
    ("cells", "Cells", "ROIs with iscell = 1 (suite2p's classifier). Pass when there is at least one, else Pending."),
    ("rois_baseline_at_or_below_zero", "ROIs with baseline at or below zero",
     "ROIs whose corrected trace has its median at or below zero (traces/baseline_at_or_below_zero): no usable "
     "dF/F. Pass when there are none, else Pending (review them in detected_ROIs.png, magenta crosses)."),
)


def missing() -> str | None:
    """Why the records cannot be written here (aind-data-schema not importable), or None."""
    try:
        import aind_data_schema  # noqa: F401
        import aind_data_schema_models  # noqa: F401
    except ImportError as err:
        return f"aind-data-schema is not installed ({err.msg})"
    return None


def data_process_name(plane_id: str) -> str:
    return f"{plane_id}{DATA_PROCESS_SUFFIX}"


def code_url() -> str:
    """The package's repository URL from its metadata (Project-URL or Home-page), else where the code that runs
    lies, as a file URI (the project states no public URL)."""
    import importlib.metadata

    import ophys_extraction

    try:
        meta = importlib.metadata.metadata("ophys-extraction")
        urls = [entry.split(",", 1)[1].strip() for entry in meta.get_all("Project-URL") or [] if "," in entry]
        if urls or meta.get("Home-page"):
            return (urls or [meta["Home-page"]])[0]
    except importlib.metadata.PackageNotFoundError:
        pass
    return Path(ophys_extraction.__file__).resolve().parent.as_uri()


def _location(path: str) -> str:
    """A movie's location as a URL (a local path as a file URI)."""
    return path if "://" in path else Path(path).as_uri() if Path(path).is_absolute() else path


def data_process(plane_id: str, parameters: dict[str, Any], versions: dict[str, str], movie: str | None,
                 start: datetime, end: datetime, outputs: dict[str, Any]) -> dict[str, Any]:
    """The plane's DataProcess as JSON data (validated by the model as it is built). `start` and `end` carry a
    time zone; `outputs` are the plane's counts."""
    from aind_data_schema.components.identifiers import Code, DataAsset, Software
    from aind_data_schema.core.processing import DataProcess, ProcessStage
    from aind_data_schema_models.process_names import ProcessName

    code = Code(url=code_url(), name=CODE_NAME, version=versions.get("ophys_extraction"), language="Python",
                language_version=versions.get("python"),
                core_dependency=Software(name="suite2p", version=versions.get("suite2p")),
                input_data=[DataAsset(name=plane_id, url=_location(movie))] if movie else None,
                parameters=parameters)
    record = DataProcess(
        process_type=ProcessName.VIDEO_ROI_TIMESERIES_EXTRACTION, name=f"{CODE_NAME} {plane_id}",
        stage=ProcessStage.PROCESSING, code=code, experimenters=[], start_date_time=start,
        end_date_time=max(end, start), output_path=f"{plane_id}/extraction", output_parameters=outputs,
        notes=f"Plane {plane_id}: summary images, Cellpose 3 segmentation, suite2p 1.x ROI statistics and traces, "
              "neuropil correction and classification (extraction.h5, docs/output.md).")
    return json.loads(record.model_dump_json())


def metric_status(column: str, value: Any) -> str:
    """'Pass' or 'Pending' for one of summary.json's per-plane values (the rules of COUNT_METRICS; warnings: Pass
    when there are none)."""
    if column in ("rois", "cells"):
        return "Pass" if value else "Pending"
    return "Pass" if not value else "Pending"


def quality_control(summary: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The run's QualityControl as JSON data, from what summary.json holds; statuses are stamped `at`."""
    from aind_data_schema.core.quality_control import QCMetric, QCStatus, QualityControl, Stage, Status
    from aind_data_schema_models.modalities import Modality

    def metric(plane: str, evaluation: str, value: Any, status: str, description: str) -> QCMetric:
        return QCMetric(name=f"{plane} {evaluation}", modality=Modality.POPHYS, stage=Stage.PROCESSING, value=value,
                        status_history=[QCStatus(evaluator=EVALUATOR, status=Status(status), timestamp=at)],
                        description=description, reference=f"{plane}/{FIGURE}",
                        tags={"plane": plane, "evaluation": evaluation})

    metrics = []
    for row in summary.get("planes", []):
        plane = str(row["plane"])
        if row.get("status") != "ok":
            metrics.append(metric(plane, "Processing", row.get("error"), "Fail",
                                  "The plane failed (summary.json's error). Fail."))
            continue
        for column, evaluation, description in COUNT_METRICS:
            metrics.append(metric(plane, evaluation, row.get(column), metric_status(column, row.get(column)),
                                  description))
        warnings = list(row.get("warnings") or [])
        metrics.append(metric(plane, "Warnings", warnings, metric_status("warnings", warnings),
                              "What was odd about the movie or the plane (summary.json's warnings). Pass when there "
                              "are none, else Pending."))
    record = QualityControl(metrics=metrics, default_grouping=["plane", "evaluation"],
                            notes=f"{CODE_NAME}: the per-plane metrics of summary.json")
    return json.loads(record.model_dump_json())


def write_json(path: Path, doc: dict[str, Any]) -> Path:
    """`doc` as indented JSON at `path`, written under a temporary name and renamed."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
