"""Per product, the wire events a user stream decodes (``e`` → struct).

One row per product folder (``usdm/``, ``coinm/``); spot has no stream decoder yet and falls
back to USDⓈ-M's table (its frames are refused at config time: ``market = "spot"`` is not served).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from fillstream.binance.coinm.events import COINM_EVENT_TYPES
from fillstream.binance.usdm.events import USDM_EVENT_TYPES, Event
from fillstream.ledger import Market

EVENT_TYPES: Final[Mapping[Market, Mapping[str, type[Event]]]] = {
    Market.USDM: USDM_EVENT_TYPES,
    Market.COINM: COINM_EVENT_TYPES,
    Market.SPOT: USDM_EVENT_TYPES,
}
