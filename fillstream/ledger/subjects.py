"""NATS subjects and ``Nats-Msg-Id`` values (design.md §5). The message id is the dedup key."""

from __future__ import annotations

from fillstream.ledger.types import (
    BalanceChange,
    CloseReason,
    FillKey,
    OrderUpdate,
    PositionClose,
    PositionCorrection,
    StatusChange,
)


def fill_subject(prefix: str, key: FillKey) -> str:
    return f"{prefix}.fill.{key.account}.{key.market}.{key.symbol}"


def fill_msg_id(key: FillKey) -> str:
    return f"fill:{key.account}:{key.market}:{key.symbol}:{key.trade_id}:{key.order_id}"


def order_subject(prefix: str, order: OrderUpdate) -> str:
    return f"{prefix}.order.{order.account}.{order.market}.{order.symbol}"


def order_msg_id(order: OrderUpdate) -> str:
    return (
        f"order:{order.account}:{order.market}:{order.order_id}:{order.status}:"
        f"{order.update_time_ms}"
    )


def close_subject(prefix: str, close: PositionClose) -> str:
    return f"{prefix}.position.closed.{close.account}.{close.market}.{close.symbol}"


def close_msg_id(close: PositionClose) -> str:
    """``close:<account>:<market>:<symbol>:<position_side>:<closing trade id>``.

    An exchange correction has no closing trade: ``r<time_ms>`` stands in for it. A revision
    (a late fill changed the evidence) gets ``:r<revision>`` so it is not deduplicated away.
    """
    trade = (
        f"r{close.closed_at_ms}"
        if close.reason is CloseReason.RECONCILED_UNKNOWN
        else str(close.close_trade_id)
    )
    base = f"close:{close.account}:{close.market}:{close.symbol}:{close.position_side}:{trade}"
    return f"{base}:r{close.revision}" if close.revision else base


def corrected_subject(prefix: str, account: str, market: str, symbol: str) -> str:
    return f"{prefix}.position.corrected.{account}.{market}.{symbol}"


def correction_msg_id(c: PositionCorrection) -> str:
    return f"corrected:{c.account}:{c.market}:{c.symbol}:{c.position_side}:{c.time_ms}:{c.qty}"


def retraction_msg_id(close: PositionClose) -> str:
    return f"retracted:{close_msg_id(close)}"


def status_subject(prefix: str, account: str) -> str:
    return f"{prefix}.status.{account}"


def status_msg_id(change: StatusChange) -> str:
    return f"status:{change.account}:{change.market}:{change.state}:{change.time_ms}"


def balance_subject(prefix: str, balance: BalanceChange) -> str:
    return f"{prefix}.balance.{balance.account}.{balance.market}.{balance.asset}"


def balance_msg_id(balance: BalanceChange) -> str:
    """``balance:<account>:<market>:<asset>:<kind>:<time_ms>``: the ``balance_changes`` key."""
    b = balance
    return f"balance:{b.account}:{b.market}:{b.asset}:{b.kind}:{b.time_ms}"
