#!/usr/bin/env python3
"""Write the steps' entries of nextflow_schema.json from their options tables (src/ophys_extraction/options.py).

    .venv/bin/python tools/write_schema.py        # rewrites the file in place; --check: exit 1 if it would change

Only the entries of parameters in the tables are written (one line each, in place); the groups, their order and the
pipeline's own parameters (input, outdir, profiles' settings) stay as written. tests/test_parameters.py fails when the
file differs from what this writes.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from ophys_extraction.options import schema_entries

SCHEMA = Path(__file__).resolve().parents[1] / "nextflow_schema.json"
ENTRY = re.compile(r'^(\s*)"(\w+)": \{.*\}(,?)$')


def rendered(text: str) -> str:
    """The schema text with every table parameter's line rewritten; a parameter missing from it is an error."""
    entries = schema_entries()
    seen = set()
    lines = []
    for line in text.splitlines():
        match = ENTRY.match(line)
        if match and match.group(2) in entries:
            indent, name, comma = match.groups()
            line = f'{indent}"{name}": {json.dumps(entries[name], ensure_ascii=False)}{comma}'
            seen.add(name)
        lines.append(line)
    missing = sorted(set(entries) - seen)
    if missing:
        raise SystemExit(f"{SCHEMA}: no line for parameter(s) {', '.join(missing)}: add a placeholder entry "
                         '("name": {},) to the step\'s group, then run this again')
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = SCHEMA.read_text(encoding="utf-8")
    new = rendered(text)
    if "--check" in argv:
        return 0 if new == text else 1
    SCHEMA.write_text(new, encoding="utf-8")
    json.loads(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
