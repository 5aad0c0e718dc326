"""JetStream message payloads (design.md §5) and the outbox messages carrying them.

JSON by msgspec; every amount is a decimal string (msgspec encodes ``Decimal`` as a string), every
payload names its ``schema`` and its ``source``. The JSON Schemas are :func:`json_schemas`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from fillstream.ledger import (
    BalanceChange,
    BalanceKind,
    CloseReason,
    Fill,
    FillKey,
    FillSource,
    Market,
    OrderUpdate,
    PositionClose,
    PositionCorrection,
    PositionSide,
    Side,
    StatusChange,
    StreamState,
    subjects,
    units,
)


class FillMessage(msgspec.Struct, frozen=True, kw_only=True):
    """``<prefix>.fill.<account>.<market>.<symbol>``: one execution."""

    schema: str = "fill/v1"
    account: str
    market: Market
    symbol: str
    trade_id: int
    order_id: int
    side: Side
    position_side: PositionSide
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    realized_pnl: Decimal
    maker: bool
    trade_time_ms: int
    client_order_id: str | None
    order_type: str | None
    orig_type: str | None
    reduce_only: bool | None
    event_time_ms: int | None
    source: FillSource
    # Units (ledger/units.py): ``qty`` is ``contracts`` (COIN-M: USD contractSize each, price in
    # USD, commission and realized_pnl in ``margin_asset``, the coin) or ``base`` (USDⓈ-M: the
    # base asset; margin_asset null: the account's, as commission_asset names it).
    # ``contract_size``: USD per contract (COIN-M, exchangeInfo ``contractSize``; null on USDⓈ-M,
    # or when not known); ``base_qty``: the coin amount, ``qty * contract_size / price`` (COIN-M;
    # null when the size is not known), ``qty`` itself on USDⓈ-M.
    qty_unit: str = "base"
    margin_asset: str | None = None
    contract_size: Decimal | None = None
    base_qty: Decimal | None = None


class OrderMessage(msgspec.Struct, frozen=True, kw_only=True):
    """``<prefix>.order.<account>.<market>.<symbol>``: one order state transition."""

    schema: str = "order/v1"
    account: str
    market: Market
    symbol: str
    order_id: int
    client_order_id: str
    side: Side
    position_side: PositionSide
    order_type: str
    orig_type: str
    status: str
    price: Decimal
    avg_price: Decimal
    orig_qty: Decimal
    filled_qty: Decimal
    stop_price: Decimal
    reduce_only: bool
    close_position: bool
    update_time_ms: int
    execution_type: str | None
    expiry_reason: str | None
    source: FillSource


class CloseMessage(msgspec.Struct, frozen=True, kw_only=True):
    """``<prefix>.position.closed.<account>.<market>.<symbol>``: a close and its evidence."""

    schema: str = "close/v1"
    account: str
    market: Market
    symbol: str
    position_side: PositionSide
    reason: CloseReason
    close_trade_id: int
    close_order_id: int
    qty: Decimal
    entry_price: Decimal
    exit_price: Decimal
    realized_pnl: Decimal
    fees: dict[str, Decimal]
    funding: Decimal | None
    opened_at_ms: int
    closed_at_ms: int
    closing_fills: tuple[FillKey, ...]
    source: FillSource
    revision: int
    # Units: ``qty`` in ``qty_unit`` (contracts or base), ``realized_pnl`` and ``funding`` in
    # ``pnl_asset`` (COIN-M: the margin coin; null on USDⓈ-M: the account's margin asset);
    # entry and exit prices are contract-weighted harmonic means on COIN-M (as Binance's).
    qty_unit: str = "base"
    margin_asset: str | None = None
    pnl_asset: str | None = None
    contract_size: Decimal | None = None  # COIN-M: USD per contract (null on USDⓈ-M)


class CorrectedMessage(msgspec.Struct, frozen=True, kw_only=True):
    """``<prefix>.position.corrected.<account>.<market>.<symbol>``.

    ``kind`` is ``correction`` (the exchange disagreed and won: ``qty``/``entry_price`` are the
    exchange's) or ``retraction`` (a late fill showed that ``retracted`` never happened).
    """

    schema: str = "corrected/v1"
    kind: str
    account: str
    market: Market
    symbol: str
    position_side: PositionSide
    qty: Decimal | None = None
    entry_price: Decimal | None = None
    time_ms: int
    retracted: CloseMessage | None = None
    source: FillSource


class StatusMessage(msgspec.Struct, frozen=True, kw_only=True):
    """``<prefix>.status.<account>``: a stream health transition."""

    schema: str = "status/v1"
    account: str
    market: Market
    state: StreamState
    previous: StreamState | None
    reason: str
    time_ms: int
    source: FillSource = FillSource.STREAM


class BalanceMessage(msgspec.Struct, frozen=True, kw_only=True):
    """``<prefix>.balance.<account>.<market>.<asset>``: one asset's balance as the venue reported
    it (spot).

    ``kind`` ``position`` (outboundAccountPosition, or the account snapshot of the reconcile
    path): ``free`` and ``locked`` are the asset's amounts at ``time_ms`` (the event's ``u``),
    ``delta`` null. ``delta`` (balanceUpdate: deposit, withdrawal, transfer) and
    ``external_lock`` (externalLockUpdate: + locked, - unlocked): ``delta`` moved at ``time_ms``
    (the event's ``T``), ``free``/``locked`` null. ``event_time_ms`` is the event's ``E``.
    """

    schema: str = "balance/v1"
    account: str
    market: Market
    asset: str
    kind: BalanceKind
    free: Decimal | None
    locked: Decimal | None
    delta: Decimal | None
    time_ms: int
    event_time_ms: int
    source: FillSource


class OutboxMessage(msgspec.Struct, kw_only=True):
    """One message to publish. ``id`` is the outbox row id once stored (0 before).

    ``account``/``market``/``received_at_ns`` are kept in memory only, for the event-to-publish
    latency of the fast path; rows read back from the table have none.
    """

    subject: str
    msg_id: str
    payload: bytes
    id: int = 0
    account: str | None = None
    market: str | None = None
    received_at_ns: int | None = None


_encoder = msgspec.json.Encoder(decimal_format="string")
_close_decoder = msgspec.json.Decoder(CloseMessage)


def encode(message: msgspec.Struct) -> bytes:
    return _encoder.encode(message)


def fill_message(prefix: str, fill: Fill) -> OutboxMessage:
    key = fill.key
    body = FillMessage(
        account=fill.account,
        market=fill.market,
        symbol=fill.symbol,
        trade_id=fill.trade_id,
        order_id=fill.order_id,
        side=fill.side,
        position_side=fill.position_side,
        price=fill.price,
        qty=fill.qty,
        quote_qty=fill.quote_qty,
        commission=fill.commission,
        commission_asset=fill.commission_asset,
        realized_pnl=fill.realized_pnl,
        maker=fill.maker,
        trade_time_ms=fill.trade_time_ms,
        client_order_id=fill.client_order_id,
        order_type=fill.order_type,
        orig_type=fill.orig_type,
        reduce_only=fill.reduce_only,
        event_time_ms=fill.event_time_ms,
        source=fill.source,
        qty_unit=units.qty_unit(fill.market),
        margin_asset=units.margin_asset(fill.market, fill.symbol),
        contract_size=fill.contract_size,
        base_qty=units.fill_base_qty(fill.market, fill.qty, fill.price, fill.contract_size),
    )
    return OutboxMessage(
        subject=subjects.fill_subject(prefix, key),
        msg_id=subjects.fill_msg_id(key),
        payload=_encoder.encode(body),
        account=fill.account,
        market=fill.market.value,
        received_at_ns=fill.received_at_ns,
    )


def order_message(prefix: str, order: OrderUpdate) -> OutboxMessage:
    body = OrderMessage(
        account=order.account,
        market=order.market,
        symbol=order.symbol,
        order_id=order.order_id,
        client_order_id=order.client_order_id,
        side=order.side,
        position_side=order.position_side,
        order_type=order.order_type,
        orig_type=order.orig_type,
        status=order.status,
        price=order.price,
        avg_price=order.avg_price,
        orig_qty=order.orig_qty,
        filled_qty=order.filled_qty,
        stop_price=order.stop_price,
        reduce_only=order.reduce_only,
        close_position=order.close_position,
        update_time_ms=order.update_time_ms,
        execution_type=order.execution_type,
        expiry_reason=order.expiry_reason,
        source=order.source,
    )
    return OutboxMessage(
        subject=subjects.order_subject(prefix, order),
        msg_id=subjects.order_msg_id(order),
        payload=_encoder.encode(body),
        account=order.account,
        market=order.market.value,
        received_at_ns=order.received_at_ns,
    )


def close_body(close: PositionClose) -> CloseMessage:
    margin = units.margin_asset(close.market, close.symbol)
    return CloseMessage(
        account=close.account,
        market=close.market,
        symbol=close.symbol,
        position_side=close.position_side,
        reason=close.reason,
        close_trade_id=close.close_trade_id,
        close_order_id=close.close_order_id,
        qty=close.qty,
        entry_price=close.entry_price,
        exit_price=close.exit_price,
        realized_pnl=close.realized_pnl,
        fees=close.fees,
        funding=close.funding,
        opened_at_ms=close.opened_at_ms,
        closed_at_ms=close.closed_at_ms,
        closing_fills=close.closing_fills,
        source=close.source,
        revision=close.revision,
        qty_unit=units.qty_unit(close.market),
        margin_asset=margin,
        pnl_asset=margin,
        contract_size=close.contract_size,
    )


def close_from_json(data: bytes | str) -> PositionClose:
    """The inverse of the close payload, for restoring the book from ``position_closes``."""
    m = _close_decoder.decode(data)
    return PositionClose(
        account=m.account,
        market=m.market,
        symbol=m.symbol,
        position_side=m.position_side,
        reason=m.reason,
        close_trade_id=m.close_trade_id,
        close_order_id=m.close_order_id,
        qty=m.qty,
        entry_price=m.entry_price,
        exit_price=m.exit_price,
        realized_pnl=m.realized_pnl,
        fees=m.fees,
        funding=m.funding,
        opened_at_ms=m.opened_at_ms,
        closed_at_ms=m.closed_at_ms,
        closing_fills=m.closing_fills,
        source=m.source,
        revision=m.revision,
        contract_size=m.contract_size,
    )


def close_message(prefix: str, close: PositionClose) -> OutboxMessage:
    return OutboxMessage(
        subject=subjects.close_subject(prefix, close),
        msg_id=subjects.close_msg_id(close),
        payload=_encoder.encode(close_body(close)),
        account=close.account,
        market=close.market.value,
    )


def retraction_message(prefix: str, close: PositionClose, source: FillSource) -> OutboxMessage:
    body = CorrectedMessage(
        kind="retraction",
        account=close.account,
        market=close.market,
        symbol=close.symbol,
        position_side=close.position_side,
        time_ms=close.closed_at_ms,
        retracted=close_body(close),
        source=source,
    )
    return OutboxMessage(
        subject=subjects.corrected_subject(prefix, close.account, close.market, close.symbol),
        msg_id=subjects.retraction_msg_id(close),
        payload=_encoder.encode(body),
        account=close.account,
        market=close.market.value,
    )


def correction_message(prefix: str, correction: PositionCorrection) -> OutboxMessage:
    c = correction
    body = CorrectedMessage(
        kind="correction",
        account=c.account,
        market=c.market,
        symbol=c.symbol,
        position_side=c.position_side,
        qty=c.qty,
        entry_price=c.entry_price,
        time_ms=c.time_ms,
        source=FillSource.RECONCILE,
    )
    return OutboxMessage(
        subject=subjects.corrected_subject(prefix, c.account, c.market, c.symbol),
        msg_id=subjects.correction_msg_id(c),
        payload=_encoder.encode(body),
        account=c.account,
        market=c.market.value,
    )


def status_message(prefix: str, change: StatusChange) -> OutboxMessage:
    body = StatusMessage(
        account=change.account,
        market=change.market,
        state=change.state,
        previous=change.previous,
        reason=change.reason,
        time_ms=change.time_ms,
    )
    return OutboxMessage(
        subject=subjects.status_subject(prefix, change.account),
        msg_id=subjects.status_msg_id(change),
        payload=_encoder.encode(body),
        account=change.account,
        market=change.market.value,
    )


def balance_message(prefix: str, balance: BalanceChange) -> OutboxMessage:
    body = BalanceMessage(
        account=balance.account,
        market=balance.market,
        asset=balance.asset,
        kind=balance.kind,
        free=balance.free,
        locked=balance.locked,
        delta=balance.delta,
        time_ms=balance.time_ms,
        event_time_ms=balance.event_time_ms,
        source=balance.source,
    )
    return OutboxMessage(
        subject=subjects.balance_subject(prefix, balance),
        msg_id=subjects.balance_msg_id(balance),
        payload=_encoder.encode(body),
        account=balance.account,
        market=balance.market.value,
        received_at_ns=balance.received_at_ns,
    )


def json_schemas() -> dict[str, Any]:
    """JSON Schema of every payload, keyed by its ``schema`` value (for ``docs/``)."""
    types: list[type[msgspec.Struct]] = [
        FillMessage,
        OrderMessage,
        CloseMessage,
        CorrectedMessage,
        StatusMessage,
        BalanceMessage,
    ]
    return {
        f"{t.__name__.removesuffix('Message').lower()}/v1": msgspec.json.schema(t) for t in types
    }
