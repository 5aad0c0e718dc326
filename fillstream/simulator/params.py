"""Request parameters with Binance's validation errors."""

from __future__ import annotations

from fillstream.simulator.apierror import ApiError, bad_param, combination, mandatory

DAY_MS = 24 * 3600 * 1000
WEEK_MS = 7 * DAY_MS


class Params:
    """The merged query-string and form-body parameters of one request.

    ``product`` is the product of the path the request came on (``/fapi``: usdm, ``/dapi``:
    coinm); handlers shared by both use it to see only that product's symbols.
    """

    def __init__(self, values: dict[str, str], product: str = "usdm") -> None:
        self.values = values
        self.product = product

    def get(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if value not in (None, "") else None

    def required(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise mandatory(name)
        return value

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.get(name)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'.") from None

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if value.lower() not in ("true", "false"):
            raise bad_param(name)
        return value.lower() == "true"

    def limit(self, default: int, maximum: int) -> int:
        limit = self.integer("limit", default)
        assert limit is not None
        if limit < 1 or limit > maximum:
            raise bad_param("limit")
        return limit

    def window(
        self, now_ms: int, max_ms: int = WEEK_MS, default_ms: int = WEEK_MS
    ) -> tuple[int, int, bool]:
        """(start, end, newest_first) from ``startTime``/``endTime``, Binance's defaults.

        Neither: the last ``default_ms`` up to now, newest rows first (the caller returns the
        newest ``limit`` rows, ascending). Only ``endTime``: ``default_ms`` before it, newest
        first. Only ``startTime``: up to ``max_ms`` after it, oldest first. A wider explicit
        window than ``max_ms`` is ``-1127``.
        """
        start = self.integer("startTime")
        end = self.integer("endTime")
        newest = start is None
        if start is None and end is None:
            end = now_ms
            start = now_ms - default_ms
        elif start is None:
            assert end is not None
            start = end - default_ms
        elif end is None:
            end = start + max_ms
        if start > end:
            raise combination()
        if end - start > max_ms:
            raise ApiError(
                400, -1127, f"More than {max_ms // DAY_MS} days between startTime and endTime."
            )
        return start, end, newest
