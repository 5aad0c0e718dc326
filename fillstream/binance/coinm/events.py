"""COIN-M user-data events as Binance sends them on dstream (binance-wave2.md §B.3).

The same letters as USDⓈ-M (:mod:`fillstream.binance.usdm.events`), so the structs extend
those rather than copy them; what COIN-M adds:

* ORDER_TRADE_UPDATE and ACCOUNT_UPDATE carry the account alias as top-level ``i``;
* the order object carries ``ma`` (the margin asset: the coin); ``q``/``l``/``z`` are contracts,
  ``n`` (commission) and ``rp`` (realized profit) are in the coin (``N`` = ``ma`` normally);
* no TRADE_LITE; ``si``/``ss``/``gtd`` are absent (they default).

Whether COIN-M pushes ALGO_UPDATE since the CM-UM integration is unconfirmed (§B.2): it is
decoded with the USDⓈ-M shape if it appears, and any other unknown ``e`` is skipped by the
decoder (stream/decode.py counts it, nothing breaks).
"""

from __future__ import annotations

from fillstream.binance.usdm import events as usdm


class OrderTradeUpdateOrder(usdm.OrderTradeUpdateOrder, frozen=True):
    ma: str | None = None  # margin asset (the coin)


class OrderTradeUpdate(usdm.OrderTradeUpdate, frozen=True):
    o: OrderTradeUpdateOrder  # order
    i: str | None = None  # account alias


class AccountUpdate(usdm.AccountUpdate, frozen=True):
    i: str | None = None  # account alias


Event = (
    OrderTradeUpdate
    | AccountUpdate
    | usdm.AccountConfigUpdate
    | usdm.MarginCall
    | usdm.ListenKeyExpired
    | usdm.AlgoUpdate
    | usdm.StrategyUpdate
    | usdm.GridUpdate
)

COINM_EVENT_TYPES: dict[str, type[usdm.Event]] = {
    "ORDER_TRADE_UPDATE": OrderTradeUpdate,
    "ACCOUNT_UPDATE": AccountUpdate,
    "ACCOUNT_CONFIG_UPDATE": usdm.AccountConfigUpdate,
    "MARGIN_CALL": usdm.MarginCall,
    "listenKeyExpired": usdm.ListenKeyExpired,
    "ALGO_UPDATE": usdm.AlgoUpdate,  # unconfirmed on COIN-M: decoded if it appears
    "STRATEGY_UPDATE": usdm.StrategyUpdate,
    "GRID_UPDATE": usdm.GridUpdate,
}
"""Every COIN-M user-data event type (PYSDK's set, plus ALGO_UPDATE) and its wire struct; any
other ``e`` is an unknown event, skipped by the decoder."""

COINM_EVENTS: tuple[str, ...] = tuple(COINM_EVENT_TYPES)
"""The COIN-M events (dstream's ``/ws/<listenKey>`` takes no ``events=`` filter)."""
