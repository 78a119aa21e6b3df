"""Scorecards back to TOML text, and a readable field-by-field diff of two scorecards."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from src.app.analysis.scorecard_model import ScorecardSpec

INLINE_DEPTH = 3
"""Tables this deep or deeper (e.g. `signals.x.categories`) are written inline."""

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def scorecard_to_toml(scorecard: ScorecardSpec) -> str:
    """The scorecard as TOML text that `parse_scorecard` reads back into an equal scorecard."""
    data = scorecard.model_dump(mode="json", by_alias=True, exclude_none=True)
    lines = [f"# Scorecard {scorecard.name!r}, version {scorecard.version!r}."]
    _write_table(lines, (), data)
    return "\n".join(lines).strip() + "\n"


def scorecard_diff(a: ScorecardSpec, b: ScorecardSpec) -> str:
    """Every field that differs between two scorecards, one per line: `~ changed`, `+ only in b`, `- only in a`."""
    left, right = (
        _flatten(a.model_dump(mode="json", by_alias=True, exclude_none=True)),
        _flatten(b.model_dump(mode="json", by_alias=True, exclude_none=True)),
    )
    lines = [f"--- {a.name} (version {a.version})", f"+++ {b.name} (version {b.version})"]
    for key in sorted(left.keys() | right.keys(), key=_path_order(left, right)):
        if key not in right:
            lines.append(f"- {key} = {left[key]}")
        elif key not in left:
            lines.append(f"+ {key} = {right[key]}")
        elif left[key] != right[key]:
            lines.append(f"~ {key}: {left[key]} -> {right[key]}")
    if len(lines) == 2:
        lines.append("(no differences)")
    return "\n".join(lines)


def _path_order(left: dict[str, str], right: dict[str, str]) -> Any:
    """Sort keys in the order they appear in `a`, then those only in `b` in their order."""
    order = {key: index for index, key in enumerate([*left, *(key for key in right if key not in left)])}
    return order.__getitem__


def _flatten(data: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(data, dict) and data:
        flat: dict[str, str] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: _value(data)}


def _write_table(lines: list[str], path: tuple[str, ...], table: dict[str, Any]) -> None:
    inline = {key: value for key, value in table.items() if not _is_header(path, value)}
    if path and inline:
        lines.append("")
        lines.append("[" + ".".join(_key(part) for part in path) + "]")
    lines.extend(f"{_key(key)} = {_value(value)}" for key, value in inline.items())
    for key, value in table.items():
        if _is_header(path, value):
            _write_table(lines, (*path, key), value)


def _is_header(path: tuple[str, ...], value: Any) -> bool:
    return isinstance(value, dict) and len(path) + 1 < INLINE_DEPTH


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else f"{'-' if value < 0 else ''}inf")
        )
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{_key(key)} = {_value(item)}" for key, item in value.items()) + " }" if value else "{}"
        )
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
