"""Domain types: what fillstream knows about an account, independent of where it came from.

Wire types (Binance's one-letter keys) live in the paths' own modules and are converted into these
exactly once, in each path's ``parse`` module. Amounts are ``Decimal`` here and everywhere after;
times are integer milliseconds as the exchange gives them.
"""

from __future__ import annotations

import enum
from decimal import Decimal

import msgspec


class Market(enum.StrEnum):
    USDM = "usdm"
    COINM = "coinm"
    SPOT = "spot"


class Side(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class PositionSide(enum.StrEnum):
    """``BOTH`` in one-way mode; ``LONG``/``SHORT`` in hedge mode."""

    BOTH = "BOTH"
    LONG = "LONG"
    SHORT = "SHORT"


class FillSource(enum.StrEnum):
    """Which path delivered a fact first; a fill first seen by ``reconcile`` was a stream miss."""

    STREAM = "stream"
    RECONCILE = "reconcile"


class CloseReason(enum.StrEnum):
    TAKE_PROFIT = "take_profit"
    STOP_LOSS = "stop_loss"
    TRAILING_STOP = "trailing_stop"
    LIQUIDATION = "liquidation"
    ADL = "adl"
    SETTLEMENT = "settlement"
    DELIVERY = "delivery"  # COIN-M dated contract delivered (delivery_autoclose-)
    MANUAL = "manual"
    RECONCILED_UNKNOWN = "reconciled_unknown"


class StreamState(enum.StrEnum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    RECOVERING = "recovering"
    DEGRADED = "degraded"
    AUTH_FAILED = "auth_failed"
    STOPPED = "stopped"


class FillKey(msgspec.Struct, frozen=True, order=True):
    """The identity of a fill: the PostgreSQL unique key and the ``Nats-Msg-Id`` are built from it.

    Futures trade ids are unique per symbol; the order id is added because a self-trade produces
    two executions (one per order) sharing one trade id.
    """

    account: str
    market: Market
    symbol: str
    trade_id: int
    order_id: int


class Fill(msgspec.Struct, frozen=True, kw_only=True):
    """One execution of one order. Immutable; identified by :attr:`key`."""

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
    source: FillSource
    # Known from the order (stream events carry them; the REST path enriches them from the order).
    client_order_id: str | None = None
    order_type: str | None = None
    orig_type: str | None = None
    reduce_only: bool | None = None
    # Exchange event time (stream only) and our receipt time (ns, time.time_ns) for latency metrics.
    event_time_ms: int | None = None
    received_at_ns: int | None = None
    # USD per contract (COIN-M, from exchangeInfo ``contractSize``; None when unknown and on
    # linear products): what turns ``qty`` contracts into USD notional or the coin amount.
    contract_size: Decimal | None = None

    @property
    def key(self) -> FillKey:
        return FillKey(self.account, self.market, self.symbol, self.trade_id, self.order_id)

    @property
    def signed_qty(self) -> Decimal:
        return self.qty if self.side is Side.BUY else -self.qty


class OrderUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """One order state transition (ORDER_TRADE_UPDATE, ``order``/``allOrders`` rows, order sync)."""

    account: str
    market: Market
    symbol: str
    order_id: int
    client_order_id: str
    side: Side
    position_side: PositionSide
    order_type: str
    orig_type: str
    status: str  # NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED, EXPIRED_IN_MATCH, UNKNOWN
    price: Decimal
    avg_price: Decimal
    orig_qty: Decimal
    filled_qty: Decimal
    stop_price: Decimal
    reduce_only: bool
    close_position: bool
    update_time_ms: int
    source: FillSource
    execution_type: str | None = None
    expiry_reason: str | None = None
    received_at_ns: int | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_ORDER_STATUSES


TERMINAL_ORDER_STATUSES = frozenset(
    {"FILLED", "CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", "UNKNOWN"}
)


class AlgoLink(msgspec.Struct, frozen=True, kw_only=True):
    """A conditional (Algo Service) order and, once triggered, the matching-engine order it created.

    From ALGO_UPDATE (``aid``, ``o``, ``ai``) or the algo REST endpoints (``actualOrderId``).
    This is how a close is classified as take-profit, stop-loss or trailing stop.
    """

    account: str
    market: Market
    symbol: str
    algo_id: int
    client_algo_id: str
    algo_type: str  # STOP_MARKET, TAKE_PROFIT_MARKET, STOP, TAKE_PROFIT, TRAILING_STOP_MARKET
    status: str  # NEW, CANCELED, TRIGGERING, TRIGGERED, FINISHED, REJECTED, EXPIRED
    order_id: int | None  # the triggered child order; None until triggered
    update_time_ms: int


class PositionKey(msgspec.Struct, frozen=True, order=True):
    account: str
    market: Market
    symbol: str
    position_side: PositionSide


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """A position folded from fills; ``qty`` is signed (short < 0) like ``positionAmt``."""

    account: str
    market: Market
    symbol: str
    position_side: PositionSide
    qty: Decimal
    entry_price: Decimal
    realized_pnl: Decimal  # Σ rp of this lifecycle's reducing fills so far
    opened_at_ms: int | None
    updated_at_ms: int

    @property
    def key(self) -> PositionKey:
        return PositionKey(self.account, self.market, self.symbol, self.position_side)


class PositionClose(msgspec.Struct, frozen=True, kw_only=True):
    """A position returned to zero: an immutable fact with the evidence behind it.

    ``revision`` starts at 0; a later, older fill (the stream missed it and the poll found it) that
    changes what is known about this close yields the same close with ``revision`` + 1.
    """

    account: str
    market: Market
    symbol: str
    position_side: PositionSide
    reason: CloseReason
    close_trade_id: int
    close_order_id: int
    qty: Decimal  # the largest absolute size the position reached
    entry_price: Decimal
    exit_price: Decimal  # volume-weighted price of the reducing fills
    realized_pnl: Decimal  # Σ rp of the reducing fills
    fees: dict[str, Decimal]  # per commission asset, over the whole lifecycle
    funding: Decimal | None  # Σ FUNDING_FEE over the lifecycle when the reconciler knows it
    opened_at_ms: int
    closed_at_ms: int
    closing_fills: tuple[FillKey, ...]
    source: FillSource  # source of the fill that closed it
    revision: int = 0
    contract_size: Decimal | None = None  # COIN-M: USD per contract, from the fills (units.py)


class PositionCorrection(msgspec.Struct, frozen=True, kw_only=True):
    """The exchange disagrees with the book after a backfill: the exchange wins."""

    account: str
    market: Market
    symbol: str
    position_side: PositionSide
    qty: Decimal
    entry_price: Decimal
    time_ms: int


class FundingFee(msgspec.Struct, frozen=True, kw_only=True):
    """A funding payment on one position (``income`` FUNDING_FEE; negative: paid).

    Folded into the position open at ``time_ms``; its close then carries the lifecycle's sum in
    :attr:`PositionClose.funding`. Identified by the venue's ``tranId``.
    """

    account: str
    market: Market
    symbol: str
    position_side: PositionSide
    amount: Decimal
    asset: str
    time_ms: int
    tran_id: int


class BalanceKind(enum.StrEnum):
    """Which spot account event reported a balance."""

    POSITION = "position"  # outboundAccountPosition: the asset's free and locked amounts now
    DELTA = "delta"  # balanceUpdate: a deposit, withdrawal or transfer of ``delta``
    EXTERNAL_LOCK = "external_lock"  # externalLockUpdate: ``delta`` locked (+) or unlocked (-)


class BalanceChange(msgspec.Struct, frozen=True, kw_only=True):
    """One asset's balance on a spot account, as the venue reported it (an exchange fact).

    ``POSITION`` carries ``free`` and ``locked`` (``delta`` is None); ``DELTA`` and
    ``EXTERNAL_LOCK`` carry ``delta`` (``free``/``locked`` None). ``time_ms`` is the event's own
    time (``u`` last account update, or ``T`` clear time); with (account, market, asset, kind) it
    identifies the fact.
    """

    account: str
    market: Market
    asset: str
    kind: BalanceKind
    time_ms: int
    event_time_ms: int
    source: FillSource
    free: Decimal | None = None
    locked: Decimal | None = None
    delta: Decimal | None = None
    received_at_ns: int | None = None


class Gap(msgspec.Struct, frozen=True, kw_only=True):
    """A window in which the stream may have missed events; the reconciler backfills it at once.

    ``until_ms`` is None while the stream is still down. ``symbols`` are the symbols known active
    (streamed recently); empty means "every symbol you know of".
    """

    account: str
    market: Market
    since_ms: int
    until_ms: int | None
    reason: str  # connect, reconnect, rotation, key_changed, listen_key_expired, stale, start
    symbols: frozenset[str] = frozenset()
    # Drop evidence (stream/evidence.py): only ``symbols``, and [since, until] bounds the trade
    # time of a fill the live stream proved missing, so trades up to ``until`` are taken at once.
    narrow: bool = False


class StatusChange(msgspec.Struct, frozen=True, kw_only=True):
    account: str
    market: Market
    state: StreamState
    previous: StreamState | None
    reason: str
    time_ms: int


class IngestBatch(msgspec.Struct, frozen=True, kw_only=True):
    """What one path hands the pipeline for one account in one go."""

    account: str
    market: Market
    source: FillSource
    fills: tuple[Fill, ...] = ()
    orders: tuple[OrderUpdate, ...] = ()
    algo_links: tuple[AlgoLink, ...] = ()
    corrections: tuple[PositionCorrection, ...] = ()
    funding: tuple[FundingFee, ...] = ()
    balances: tuple[BalanceChange, ...] = ()  # spot only


class IngestResult(msgspec.Struct, frozen=True, kw_only=True):
    new_fills: int
    duplicate_fills: int
    closes: int
    orders: int
    balances: int = 0  # new balance facts (spot)
