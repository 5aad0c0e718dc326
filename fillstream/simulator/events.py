"""User-data event payloads with exactly Binance's shapes and key names (binance-facts §2).

COIN-M (binance-wave2 §B.3): ORDER_TRADE_UPDATE and ACCOUNT_UPDATE carry the account alias as
top-level ``i``; ``o`` adds ``ma`` (margin asset) and drops ``si``/``ss``/``gtd``; ``q``/``l``/``z``
are contracts, ``n`` (commission, asset ``N``) and ``rp`` are in the margin coin, ``B[].a`` is the
coin. There is no TRADE_LITE on COIN-M.

Builders return plain dicts; the hub encodes each event once (msgspec) and fans the bytes out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from fillstream.simulator.market import SymbolSpec
from fillstream.simulator.numbers import fmt_amount, fmt_plain
from fillstream.simulator.orders import Algo, Order
from fillstream.simulator.positions import PositionState

Payload = dict[str, object]


@dataclass(slots=True, frozen=True)
class FillInfo:
    """The execution an ORDER_TRADE_UPDATE reports (absent for NEW/CANCELED/EXPIRED events).

    Amounts are the exact strings of the ``userTrades`` row, formatted once.
    """

    trade_id: int
    qty: str
    price: str
    commission: str
    realized: str
    maker: bool
    time: int


def order_trade_update(
    order: Order, execution: str, event_time: int, fill: FillInfo | None = None
) -> Payload:
    """ORDER_TRADE_UPDATE with every ``o.*`` field; ``execution`` is ``x``."""
    spec = order.spec
    fp = spec.fmt_price
    o: Payload = {
        "s": spec.symbol,  # symbol
        "c": order.client_order_id,  # client order id
        "S": order.side,  # side
        "o": order.order_type,  # order type
        "f": order.time_in_force,  # time in force
        "q": order.q_text,  # original qty
        "p": order.p_text,  # original price
        "ap": order.fmt_avg(),  # average price
        "sp": fp(order.stop_price) if order.stop_price else "0",  # stop price
        "x": execution,  # execution type
        "X": order.status,  # order status
        "i": order.order_id,  # order id
        "l": fill.qty if fill else "0",  # last filled qty
        "z": spec.fmt_qty(order.executed_qty),  # cumulative filled qty
        "L": fill.price if fill else "0",  # last filled price
        "N": "USDT",  # commission asset
        "n": fill.commission if fill else "0",  # commission (positive = fee)
        "T": fill.time if fill else event_time,  # order trade time
        "t": fill.trade_id if fill else 0,  # trade id
        "b": "0",  # bids notional
        "a": "0",  # ask notional
        "m": fill.maker if fill else False,  # is maker
        "R": order.reduce_only,  # reduce only
        "wt": order.working_type,  # stop price working type
        "ot": order.orig_type,  # original order type
        "ps": order.position_side,  # position side
        "cp": order.close_position,  # close-all
        "pP": order.price_protect,  # price protection
        "si": 0,  # ignore
        "ss": 0,  # ignore
        "rp": fill.realized if fill else "0",  # realized profit of this trade
        "V": "EXPIRE_MAKER",  # STP mode
        "pm": "NONE",  # price match
        "gtd": 0,  # good till date
        "er": order.expiry_reason,  # expiry reason
    }
    if order.activate_price is not None:
        o["AP"] = fp(order.activate_price)  # activation price
    if order.price_rate is not None:
        o["cr"] = format(order.price_rate, "f")  # callback rate
    transaction = fill.time if fill else event_time
    if spec.inverse:
        for name in ("si", "ss", "gtd"):
            del o[name]
        o["N"] = o["ma"] = spec.margin_asset  # commission in the coin; margin asset
        alias = order.alias
        return {"e": "ORDER_TRADE_UPDATE", "E": event_time, "T": transaction, "i": alias, "o": o}
    return {"e": "ORDER_TRADE_UPDATE", "E": event_time, "T": transaction, "o": o}


def trade_lite(order: Order, fill: FillInfo, event_time: int) -> Payload:
    spec = order.spec
    return {
        "e": "TRADE_LITE",
        "E": event_time,
        "T": fill.time,
        "s": spec.symbol,
        "q": order.q_text,
        "p": order.p_text,
        "m": fill.maker,
        "c": order.client_order_id,
        "S": order.side,
        "L": fill.price,
        "l": fill.qty,
        "t": fill.trade_id,
        "i": order.order_id,
    }


def position_entry(
    spec: SymbolSpec, pos: PositionState, mark: Decimal, taker_rate: Decimal
) -> Payload:
    return {
        "s": pos.symbol,  # symbol
        "pa": fmt_plain(pos.qty),  # position amount (signed)
        "ep": spec.fmt_level(pos.entry),  # entry price
        "bep": spec.fmt_level(pos.breakeven(taker_rate)),  # breakeven price
        "cr": fmt_amount(pos.cum_realized),  # accumulated realized (pre-fee)
        "up": fmt_amount(pos.unrealized(mark)),  # unrealized PnL
        "mt": "cross",  # margin type
        "iw": "0",  # isolated wallet
        "ps": pos.position_side,  # position side
    }


def account_update(
    reason: str,
    balance: Decimal,
    *,
    balance_change: Decimal,
    positions: Iterable[Payload],
    event_time: int,
    transaction_time: int,
    funding_symbol: str | None = None,
    asset: str = "USDT",
    alias: str | None = None,
) -> Payload:
    """ACCOUNT_UPDATE; ``alias`` (COIN-M) adds the top-level ``i``, ``asset`` is the wallet's."""
    wb = fmt_amount(balance)
    a: Payload = {
        "m": reason,
        "B": [{"a": asset, "wb": wb, "cw": wb, "bc": fmt_amount(balance_change)}],
        "P": list(positions),
    }
    if funding_symbol is not None:
        a["S"] = funding_symbol
    if alias is not None:
        return {"e": "ACCOUNT_UPDATE", "E": event_time, "T": transaction_time, "i": alias, "a": a}
    return {"e": "ACCOUNT_UPDATE", "E": event_time, "T": transaction_time, "a": a}


def algo_update(algo: Algo, event_time: int) -> Payload:
    spec = algo.spec
    child = algo.child
    o: Payload = {
        "caid": algo.client_algo_id,  # client algo id
        "aid": algo.algo_id,  # algo id
        "at": "CONDITIONAL",  # algo type
        "o": algo.order_type,  # order type
        "s": spec.symbol,
        "S": algo.side,
        "ps": algo.position_side,
        "f": "GTC",
        "q": spec.fmt_qty(algo.quantity) if algo.quantity else "0",
        "X": algo.status,  # algo status
        "ai": str(child.order_id) if child else "",  # matching-engine order id (string)
        "ap": child.fmt_avg() if child else "0.00000",  # avg fill price
        "aq": spec.fmt_qty(child.executed_qty) if child else "0",  # executed qty
        "act": child.order_type if child else "0",  # actual order type
        "tp": spec.fmt_price(algo.trigger_price) if algo.trigger_price else "0",  # trigger price
        "p": "0",  # order price
        "V": "EXPIRE_MAKER",
        "wt": algo.working_type,
        "pm": "NONE",
        "cp": algo.close_position,
        "pP": algo.price_protect,
        "R": algo.reduce_only,
        "tt": algo.trigger_time,  # trigger time
        "gtd": 0,
        "rm": algo.reject_reason,  # failure reason
    }
    if algo.order_type == "TRAILING_STOP_MARKET":
        o["ia"] = algo.activated
    return {"e": "ALGO_UPDATE", "T": algo.update_time or event_time, "E": event_time, "o": o}


def listen_key_expired(listen_key: str, event_time: int) -> Payload:
    return {"e": "listenKeyExpired", "E": event_time, "listenKey": listen_key}


def margin_call(
    cross_wallet: Decimal, pos: PositionState, mark: Decimal, event_time: int, leverage: int
) -> Payload:
    """MARGIN_CALL (COIN-M: ``cw``, ``up`` and ``mm`` in the coin)."""
    value = abs(pos.qty) * (pos.contract_size / mark if pos.contract_size else mark)
    maint = value * Decimal("0.004")
    return {
        "e": "MARGIN_CALL",
        "E": event_time,
        "cw": fmt_amount(cross_wallet),
        "p": [
            {
                "s": pos.symbol,
                "ps": pos.position_side,
                "pa": fmt_plain(pos.qty),
                "mt": "CROSSED",
                "iw": "0",
                "mp": fmt_plain(mark),
                "up": fmt_amount(pos.unrealized(mark)),
                "mm": fmt_amount(maint + value / leverage / 10),
            }
        ],
    }
