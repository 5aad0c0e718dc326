"""Generate docs/schemas/*.json: the JSON Schemas of the NATS payloads, from the msgspec types.

    python scripts/gen_schemas.py           # (re)write docs/schemas/
    python scripts/gen_schemas.py --check   # exit 1 and show a diff when the files drift

The payload types are ``fillstream.storage.payloads`` (``json_schemas()`` lists them, keyed by their
``schema`` value, e.g. ``fill/v1``); each becomes ``docs/schemas/fill.v1.json`` with a JSON Schema
2020-12 header. tests/deploy/test_schemas.py runs ``--check``, so a payload change without a
regenerated schema fails CI.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

from fillstream.storage.payloads import json_schemas

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "schemas"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def file_name(schema_id: str) -> str:
    """``fill/v1`` -> ``fill.v1.json``."""
    return schema_id.replace("/", ".") + ".json"


def normalise(node: Any) -> Any:
    """The schema with every ``description`` cleaned like ``inspect.cleandoc``.

    msgspec copies docstrings into descriptions, indented as written up to 0.22 and dedented
    from 0.23 on; cleaning them here keeps the committed files independent of that quirk.
    """
    if isinstance(node, dict):
        return {
            key: inspect.cleandoc(value)
            if key == "description" and isinstance(value, str)
            else normalise(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [normalise(item) for item in node]
    return node


def render() -> dict[str, str]:
    """File name -> file text for every payload schema, deterministic."""
    files: dict[str, str] = {}
    for schema_id, raw in sorted(json_schemas().items()):
        schema = normalise(raw)
        document: dict[str, Any] = {
            "$schema": DIALECT,
            "$id": f"fillstream:schemas/{file_name(schema_id)}",
            "title": schema_id,
            **schema,
        }
        files[file_name(schema_id)] = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return files


def check(files: dict[str, str], out: Path) -> list[str]:
    """Human-readable drift between ``files`` and what is on disk (empty: in sync)."""
    problems: list[str] = []
    for name, text in files.items():
        path = out / name
        current = path.read_text() if path.exists() else ""
        if current != text:
            diff = difflib.unified_diff(
                current.splitlines(keepends=True),
                text.splitlines(keepends=True),
                f"{path} (committed)",
                f"{path} (from the code)",
            )
            problems.append("".join(diff) or f"{path}: missing")
    for stale in sorted(set(p.name for p in out.glob("*.json")) - set(files)):
        problems.append(f"{out / stale}: no payload type generates it any more")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on drift")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (docs/schemas)")
    args = parser.parse_args(argv)
    files = render()
    if args.check:
        problems = check(files, args.out)
        for problem in problems:
            sys.stderr.write(problem + "\n")
        if problems:
            sys.stderr.write("schemas drifted from the code: run python scripts/gen_schemas.py\n")
            return 1
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_text(text)
    for stale in set(p.name for p in args.out.glob("*.json")) - set(files):
        (args.out / stale).unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
