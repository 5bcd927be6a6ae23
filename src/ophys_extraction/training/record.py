"""The training log: what a model was trained from, how, and how it scored, as JSON and as text."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def code_version() -> str:
    """The repository commit the training code ran from ("+changes" if the work tree differed from it), so a model
    can be traced to the generator that made its synthetic data; "unknown" outside a git checkout."""
    import subprocess
    repo = Path(__file__).resolve().parents[3]
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+changes" if dirty else "")


def origin(record: dict[str, Any]) -> str:
    """"scratch", or the chain of runs a continued model comes from (each run's command line)."""
    parts, entry = [], record
    while entry.get("init_model"):
        parent = entry.get("init_model_log") or {}
        parts.append(f"{entry['init_model']} ({parent.get('epochs', '?')} epochs: "
                     f"{parent.get('command_line', 'no training log beside it')})")
        entry = parent
    return " <- ".join(parts) + " <- scratch" if parts else "scratch"


def human_readable(record: dict[str, Any]) -> str:
    lines = [f"Model {record['model']} ({record['precision']}, {record['model_bytes'] / 1e6:.1f} MB), "
             f"Cellpose {record['cellpose_version']}, torch {record['torch_version']}",
             f"command: {record['command_line']} (code {record.get('code_version', 'unknown')})",
             f"trained from {origin(record)} for {record['epochs']} epochs ({record['data']['patches_seen']} "
             f"patches) in {record['train_seconds']:.0f} s (total {record['total_seconds']:.0f} s); diam_mean "
             f"{record['diam_mean']:g}, diam_labels {record['diam_labels']:.2f}; cell-probability offset "
             f"{record['cellprob_offset']:+.1f} (chosen on training data, folded into the output bias)",
             f"synthetic training planes: {record['data']['synthetic_training']}"]
    for item in record["data"]["annotated"]:
        lines.append(f"annotated: {item}")
    lines.append("scores at IoU >= 0.5:")
    for group, entries in record["scores"].items():
        for key, s in entries.items():
            lines.append(f"  {group:22s} {key:36s} precision {s['precision']:.3f} recall {s['recall']:.3f} "
                         f"F1 {s['f1']:.3f} (TP {s['true_positives']}, true {s['n_true']}, pred {s['n_pred']})")
    return "\n".join(lines) + "\n"
