"""The WebSocket path: listenKey lifecycle, resilient connection, decode, parse → ledger.

Imports only :mod:`fillstream.ledger` and third-party libraries (import-linter enforces it).
``UserStream`` (futures, listenKey) and ``SpotUserStream`` (spot, WS-API subscriptions on
connections shared through a ``WsApiPool``) are the entry points; the sidecar wires them to a
``Venue``, a ``FillSink``, a ``GapListener`` and a ``StatusSink``.
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
from fillstream.stream.spot_stream import SpotUserStream
from fillstream.stream.spot_subscribe import SpotCredentials, check_subscription
from fillstream.stream.wsapi_pool import WsApiPool, shared_pool

__all__ = [
    "AuthFailedError",
    "FrameDecoder",
    "FrameError",
    "KeepaliveOutcome",
    "ListenKeyManager",
    "SpotCredentials",
    "SpotUserStream",
    "StreamSettings",
    "UserStream",
    "WsApiPool",
    "algo_link_from",
    "check_subscription",
    "fill_from_order_update",
    "order_update_from",
    "positions_from_account_update",
    "shared_pool",
]
