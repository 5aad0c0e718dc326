"""Sane numeric ranges for configuration structs: every number finite and within its range.

Each settings struct (``[database]``, ``[nats]``, ``[stream]``, ``[reconcile]``...) declares a
table ``{field: (low, high)}``, both ends inclusive, and calls :func:`out_of_range` once it is
built. A float field missing from the table is still required to be finite, so ``nan``, ``inf``
and ``1e400`` (which TOML reads as ``inf``) never pass. The message names the field and the range:
``stale_after_s: must be a finite number between 0.1 and 86400, got nan``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

Range = tuple[float, float]


def out_of_range(settings: object, ranges: Mapping[str, Range]) -> str | None:
    """The first numeric field of the msgspec Struct ``settings`` outside its range, as
    ``"<field>: must be …, got …"``, or ``None`` when every number is fine. Booleans are skipped;
    a float range (``(1.0, 60.0)``) says "a finite number", an int range (``(1, 100)``) says
    "an integer"."""
    for name in getattr(type(settings), "__struct_fields__", ()):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        low, high = ranges.get(name, (-math.inf, math.inf))
        if math.isfinite(value) and low <= value <= high:
            continue
        return f"{name}: {describe_range(low, high)}, got {value!r}"
    return None


def describe_range(low: float, high: float) -> str:
    """``must be a finite number between 1 and 3600`` (or ``an integer``, ``≥ 0``...)."""
    kind = "an integer" if isinstance(low, int) and isinstance(high, int) else "a finite number"
    if math.isinf(low) and math.isinf(high):
        return f"must be {kind}"
    if math.isinf(high):
        return f"must be {kind} ≥ {low:g}"
    if math.isinf(low):
        return f"must be {kind} ≤ {high:g}"
    return f"must be {kind} between {low:g} and {high:g}"
