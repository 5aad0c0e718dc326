"""Fault kinds, their parameters, and the per-account stream-fault state.

Kinds and parameters (design.md section 5 "Stable surface"), per account unless noted:

- ``drop`` ``count`` (1): the next N WebSocket events are not sent (REST keeps them).
- ``drop_rate`` ``p``: each event is dropped with probability p (seeded); ``p=0`` ends it.
- ``disconnect``: the account's sockets are cut now (no close frame; ``code`` sends one).
- ``silent`` ``seconds``: open sockets answer pings but get no data for that long.
- ``expire_listen_key``: the active key expires now: ``listenKeyExpired``, then silence.
- ``rest_lag`` ``seconds``: REST shows rows only that long after the event; ``0`` ends it.
- ``duplicate`` ``count`` (1): the next N events are sent twice.
- ``reorder`` ``count`` (2): the next N events are held and sent in reverse order.
- ``rest_error`` ``status``, ``count`` (1) [, ``code``, ``retry_after``]: the next N REST calls of
  the account (of anyone without ``account``) fail: 429/418 with ``Retry-After`` and ``-1003``,
  5xx with ``-1001``, unless ``code`` is given.
- ``clock_skew`` ``ms``: the server clock (``/time``, the timestamp check) moves (global).
- ``refuse_ws`` ``seconds``: WebSocket handshakes are refused (HTTP 503) for that long.
- ``inject_frame`` ``raw``: this exact text is sent as one frame on the account's sockets.
- ``cut``: the 24 h cut, now: sockets are closed with code 1001.

Spot accounts only (the WS API, :mod:`.spot_wsapi`):

- ``terminate_subscription``: ``eventStreamTerminated`` on the account's subscriptions, which end.
- ``refuse_subscribe`` ``count`` (1) [, ``code`` (-2015)]: its next N subscribes fail.
- ``server_shutdown`` [``seconds`` (1)]: ``serverShutdown`` on the connections the account is
  on (every WS API connection without ``account``), closed that many real seconds later.
- ``ws_api_rate_limit`` ``count`` (1) [, ``retry_after`` (1 s)]: the next N WS API requests on
  the account's connections (any, without ``account``) are answered 429 with ``retryAfter``.

On a spot account ``drop``, ``drop_rate``, ``duplicate``, ``reorder``, ``terminate_subscription``,
``refuse_subscribe`` and ``rest_*`` touch that account only, never its socket neighbours;
``disconnect``, ``silent``, ``cut``, ``inject_frame`` and ``server_shutdown`` act on the whole
connection(s) the account is subscribed on, as a network failure or a server would.

``drop`` and ``drop_rate`` count the ORDER_TRADE_UPDATE fills they swallow per account; the ground
truth reports them as ``dropped_fill_events``.
"""

from __future__ import annotations

import random
from typing import NamedTuple

KINDS = frozenset(
    {
        "drop",
        "drop_rate",
        "disconnect",
        "silent",
        "expire_listen_key",
        "rest_lag",
        "duplicate",
        "reorder",
        "rest_error",
        "clock_skew",
        "refuse_ws",
        "inject_frame",
        "cut",
        "terminate_subscription",
        "refuse_subscribe",
        "server_shutdown",
        "ws_api_rate_limit",
    }
)
SPOT_KINDS = frozenset(
    {"terminate_subscription", "refuse_subscribe", "server_shutdown", "ws_api_rate_limit"}
)
GLOBAL_KINDS = frozenset({"clock_skew"})
MAY_BE_GLOBAL = frozenset(
    {"rest_error", "refuse_ws", "clock_skew", "server_shutdown", "ws_api_rate_limit"}
)

_PARAMS: dict[str, dict[str, type]] = {
    "drop": {"count": int},
    "drop_rate": {"p": float},
    "disconnect": {"code": int},
    "silent": {"seconds": float},
    "expire_listen_key": {},
    "rest_lag": {"seconds": float},
    "duplicate": {"count": int},
    "reorder": {"count": int},
    "rest_error": {"status": int, "count": int, "code": int, "retry_after": float},
    "clock_skew": {"ms": int},
    "refuse_ws": {"seconds": float},
    "inject_frame": {"raw": str},
    "cut": {},
    "terminate_subscription": {},
    "refuse_subscribe": {"count": int, "code": int},
    "server_shutdown": {"seconds": float},
    "ws_api_rate_limit": {"count": int, "retry_after": float},
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "drop_rate": ("p",),
    "silent": ("seconds",),
    "rest_lag": ("seconds",),
    "rest_error": ("status",),
    "clock_skew": ("ms",),
    "refuse_ws": ("seconds",),
    "inject_frame": ("raw",),
}


def _convert(kind: str, name: str, typ: type, value: object) -> object:
    try:
        if typ is str:
            return value if isinstance(value, str) else str(value)
        if typ is int:
            return int(str(value))
        return float(str(value))
    except ValueError as exc:
        raise ValueError(f"fault {kind!r}: {name}={value!r} is not a {typ.__name__}") from exc


def _check_ranges(kind: str, out: dict[str, object]) -> None:
    for name in ("count", "seconds", "p"):
        number = out.get(name)
        if isinstance(number, int | float) and number < 0:
            raise ValueError(f"fault {kind!r}: {name} must be >= 0")
    if kind == "drop_rate" and float(str(out["p"])) > 1:
        raise ValueError("fault 'drop_rate': p must be within [0, 1]")
    if kind == "rest_error" and not 400 <= int(str(out["status"])) <= 599:
        raise ValueError("fault 'rest_error': status must be an HTTP error status")


def validate(kind: str, params: dict[str, object]) -> dict[str, object]:
    """Check a fault request; returns the parameters converted to their types.

    Raises ``ValueError`` naming the problem (unknown kind or parameter, missing or bad value).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(sorted(KINDS))}")
    spec = _PARAMS[kind]
    out: dict[str, object] = {}
    for name, value in params.items():
        if name not in spec:
            raise ValueError(f"fault {kind!r} takes no parameter {name!r}")
        out[name] = _convert(kind, name, spec[name], value)
    missing = [name for name in _REQUIRED.get(kind, ()) if name not in out]
    if missing:
        raise ValueError(f"fault {kind!r} needs {', '.join(missing)}")
    _check_ranges(kind, out)
    return out


class Frame(NamedTuple):
    """One encoded event on its way to the sockets."""

    etype: str
    data: bytes
    fill: bool
    product: str = "usdm"  # the stream (USDⓈ-M or COIN-M listenKey) it belongs on


class StreamFaults:
    """Per-account faults applied to each event before fan-out."""

    __slots__ = ("drop", "drop_rate", "duplicate", "held", "held_since", "reorder", "rng")

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.drop = 0
        self.drop_rate = 0.0
        self.duplicate = 0
        self.reorder = 0
        self.held: list[Frame] = []
        self.held_since = 0.0

    @property
    def active(self) -> bool:
        return bool(self.drop or self.drop_rate or self.duplicate or self.reorder or self.held)

    def apply(self, frame: Frame, mono: float) -> tuple[list[Frame], bool]:
        """Frames to send now for ``frame``, and whether ``frame`` was dropped."""
        if self.drop > 0:
            self.drop -= 1
            return [], True
        if self.drop_rate > 0 and self.rng.random() < self.drop_rate:
            return [], True
        if self.reorder > 0:
            if not self.held:
                self.held_since = mono
            self.held.append(frame)
            self.reorder -= 1
            return (self.flush() if self.reorder == 0 else []), False
        if self.duplicate > 0:
            self.duplicate -= 1
            return [frame, frame], False
        return [frame], False

    def flush(self) -> list[Frame]:
        """Release held frames, newest first."""
        out = self.held[::-1]
        self.held = []
        self.reorder = 0
        return out

    def describe(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        if self.drop:
            out.append({"kind": "drop", "count": self.drop})
        if self.drop_rate:
            out.append({"kind": "drop_rate", "p": self.drop_rate})
        if self.duplicate:
            out.append({"kind": "duplicate", "count": self.duplicate})
        if self.reorder or self.held:
            out.append({"kind": "reorder", "count": self.reorder + len(self.held)})
        return out


class RestError:
    """A pending burst of REST failures (``rest_error``)."""

    __slots__ = ("account", "code", "remaining", "retry_after", "status")

    def __init__(
        self, account: str | None, status: int, count: int, code: int | None, retry_after: float
    ) -> None:
        self.account = account
        self.status = status
        self.remaining = count
        self.code = code
        self.retry_after = retry_after

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {
            "kind": "rest_error",
            "account": self.account,
            "status": self.status,
            "count": self.remaining,
        }
        if self.code is not None:
            out["code"] = self.code
        return out


def parse_cli_fault(text: str) -> tuple[str | None, str, dict[str, object]]:
    """``kind[:name=value,...]`` (``account=`` optional) → (account, kind, validated params)."""
    kind, _, rest = text.partition(":")
    params: dict[str, object] = {}
    account: str | None = None
    if rest:
        for item in rest.split(","):
            name, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"fault {text!r}: expected name=value, got {item!r}")
            if name == "account":
                account = value
            else:
                params[name] = value
    return account, kind, validate(kind.strip(), params)
