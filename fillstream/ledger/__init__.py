"""Pure domain: fills, orders, positions, closes, and the interfaces the paths depend on.

No I/O, no asyncio, no third-party clients (import-linter enforces it).
"""

from fillstream.ledger.book import BookChange, PositionBook, folds_positions
from fillstream.ledger.classify import close_reason
from fillstream.ledger.errors import ConfigError, FillstreamError
from fillstream.ledger.protocols import (
    Cursor,
    CursorStore,
    FillIndex,
    FillSink,
    GapListener,
    OrderView,
    StatusSink,
)
from fillstream.ledger.types import (
    AlgoLink,
    BalanceChange,
    BalanceKind,
    CloseReason,
    Fill,
    FillKey,
    FillSource,
    FundingFee,
    Gap,
    IngestBatch,
    IngestResult,
    Market,
    OrderUpdate,
    Position,
    PositionClose,
    PositionCorrection,
    PositionKey,
    PositionSide,
    Side,
    StatusChange,
    StreamState,
)

__all__ = [
    "AlgoLink",
    "BalanceChange",
    "BalanceKind",
    "BookChange",
    "CloseReason",
    "ConfigError",
    "Cursor",
    "CursorStore",
    "Fill",
    "FillIndex",
    "FillKey",
    "FillSink",
    "FillSource",
    "FillstreamError",
    "FundingFee",
    "Gap",
    "GapListener",
    "IngestBatch",
    "IngestResult",
    "Market",
    "OrderUpdate",
    "OrderView",
    "Position",
    "PositionBook",
    "PositionClose",
    "PositionCorrection",
    "PositionKey",
    "PositionSide",
    "Side",
    "StatusChange",
    "StatusSink",
    "StreamState",
    "close_reason",
    "folds_positions",
]
