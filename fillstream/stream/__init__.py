"""The WebSocket path: listenKey lifecycle, resilient connection, decode, parse → ledger.

Imports only :mod:`fillstream.ledger` and third-party libraries (import-linter enforces it).
``UserStream`` is the entry point; the sidecar wires it to a ``Venue``, a ``FillSink``, a
``GapListener`` and a ``StatusSink``.
"""

from fillstream.binance.usdm.parse import (
    algo_link_from,
    fill_from_order_update,
    order_update_from,
    positions_from_account_update,
)
from fillstream.stream.config import StreamSettings
from fillstream.stream.decode import FrameDecoder, FrameError
from fillstream.stream.listen_key import AuthFailedError, KeepaliveOutcome, ListenKeyManager
from fillstream.stream.listener import UserStream

__all__ = [
    "AuthFailedError",
    "FrameDecoder",
    "FrameError",
    "KeepaliveOutcome",
    "ListenKeyManager",
    "StreamSettings",
    "UserStream",
    "algo_link_from",
    "fill_from_order_update",
    "order_update_from",
    "positions_from_account_update",
]
