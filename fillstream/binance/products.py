"""Per product: the wire events a user stream decodes (``e`` → struct), and which product's
parse module turns a fill event or a ``userTrades`` row into a ledger fill (both paths call
:func:`stream_fill` and :func:`trade_fill`, so each product has one parse module for both).

One row per product folder (``usdm/``, ``coinm/``, ``spot/``). Spot's stream events have a
shape of their own (executionReport), so the spot stream calls :mod:`fillstream.binance.spot.parse`
itself; its REST rows extend USDⓈ-M's (``MyTrade``, ``SpotOrder``), so the REST path's
:func:`trade_fill`, :func:`order_update` and :func:`order_info` serve every product.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Final, TypeVar

from fillstream.binance.coinm import events as coinm_events
from fillstream.binance.coinm import parse as coinm
from fillstream.binance.coinm import rows as coinm_rows
from fillstream.binance.coinm.events import COINM_EVENT_TYPES
from fillstream.binance.spot import parse as spot
from fillstream.binance.spot import rows as spot_rows
from fillstream.binance.spot.events import SPOT_EVENT_TYPES
from fillstream.binance.usdm import parse as usdm
from fillstream.binance.usdm.events import USDM_EVENT_TYPES, Event, OrderTradeUpdate
from fillstream.binance.usdm.rows import Order, UserTrade
from fillstream.ledger import Fill, FillSource, Market, OrderUpdate

EVENT_TYPES: Final[Mapping[Market, Mapping[str, type[Event]]]] = {
    Market.USDM: USDM_EVENT_TYPES,
    Market.COINM: COINM_EVENT_TYPES,
    Market.SPOT: SPOT_EVENT_TYPES,
}

H = TypeVar("H")


def product_handlers(
    event_types: Mapping[str, type[Event]], handlers: Mapping[type[Event], H]
) -> dict[type[Event], H]:
    """Handlers for a product's own event structs: a struct extending a handled one (COIN-M's
    OrderTradeUpdate extends USDⓈ-M's) gets its base's handler, so a dispatch by exact type
    (one dict lookup per frame) serves every product."""
    out: dict[type[Event], H] = {}
    for struct in event_types.values():
        if struct in handlers:
            continue
        for base in struct.__mro__[1:]:
            if base in handlers:
                out[struct] = handlers[base]
                break
    return out


def stream_fill(
    event: OrderTradeUpdate,
    account: str,
    market: Market,
    *,
    received_at_ns: int | None = None,
    source: FillSource = FillSource.STREAM,
    contract_size: Decimal | None = None,
) -> Fill | None:
    """The fill of an ORDER_TRADE_UPDATE (None: not a fill), by the product's parse module;
    ``contract_size`` (COIN-M: the symbol's; ignored on linear products) goes on the fill.
    Raises ``MalformedInput``."""
    if market is Market.COINM and isinstance(event, coinm_events.OrderTradeUpdate):
        return coinm.stream_fill(
            event,
            account,
            received_at_ns=received_at_ns,
            source=source,
            contract_size=contract_size,
        )
    return usdm.fill_from_order_update(
        event, account, market, received_at_ns=received_at_ns, source=source
    )


def trade_fill(
    trade: UserTrade,
    *,
    account: str,
    market: Market,
    info: usdm.OrderInfo | None,
    received_at_ns: int | None = None,
    contract_size: Decimal | None = None,
) -> Fill:
    """A ``userTrades`` row as a reconcile-sourced fill, by the product's parse module
    (``contract_size`` as in :func:`stream_fill`). Raises ``MalformedInput``."""
    if market is Market.SPOT and isinstance(trade, spot_rows.MyTrade):
        return spot.trade_fill(trade, account=account, info=info, received_at_ns=received_at_ns)
    if market is Market.COINM and isinstance(trade, coinm_rows.UserTrade):
        return coinm.trade_fill(
            trade,
            account=account,
            info=info,
            received_at_ns=received_at_ns,
            contract_size=contract_size,
        )
    return usdm.fill_from_user_trade(
        trade, account=account, market=market, info=info, received_at_ns=received_at_ns
    )


def order_update(
    order: Order, *, account: str, market: Market, received_at_ns: int | None = None
) -> OrderUpdate:
    """An ``order``/``allOrders`` row as an order state, by the product's parse module.
    Raises ``MalformedInput``."""
    if market is Market.SPOT and isinstance(order, spot_rows.SpotOrder):
        return spot.order_update_from_order(order, account=account, received_at_ns=received_at_ns)
    return usdm.order_update_from_order(
        order, account=account, market=market, received_at_ns=received_at_ns
    )


def order_info(order: Order) -> usdm.OrderInfo:
    """What a REST fill takes from its order row, by the row's product."""
    if isinstance(order, spot_rows.SpotOrder):
        return spot.order_info(order)
    return usdm.order_info(order)
