"""Why a position closed, read from the fill that closed it.

Priority (binance-facts §3): the exchange's own system orders are recognised by their client order
id (``autoclose-`` liquidation, ``adl_autoclose``, ``settlement_autoclose-``, and COIN-M's
``delivery_autoclose-``/``delivery-``: a delivery, its own reason) or the
``LIQUIDATION`` order type; then a conditional order, through the algo linkage (ALGO_UPDATE ``ai``
or REST ``actualOrderId``) or, failing that, the child order's original type ``ot``; else manual.
"""

from __future__ import annotations

from collections.abc import Mapping

from fillstream.ledger.types import CloseReason, Fill

CONDITIONAL_REASONS: Mapping[str, CloseReason] = {
    "TAKE_PROFIT": CloseReason.TAKE_PROFIT,
    "TAKE_PROFIT_MARKET": CloseReason.TAKE_PROFIT,
    "STOP": CloseReason.STOP_LOSS,
    "STOP_MARKET": CloseReason.STOP_LOSS,
    "TRAILING_STOP_MARKET": CloseReason.TRAILING_STOP,
}

_PREFIXES: tuple[tuple[str, CloseReason], ...] = (
    ("autoclose-", CloseReason.LIQUIDATION),
    ("adl_autoclose", CloseReason.ADL),
    ("settlement_autoclose-", CloseReason.SETTLEMENT),
    ("delivery_autoclose-", CloseReason.DELIVERY),
    ("delivery-", CloseReason.DELIVERY),
)


def system_reason(fill: Fill) -> CloseReason | None:
    """The reason when the exchange itself placed the order (liquidation, ADL, settlement)."""
    cid = fill.client_order_id or ""
    for prefix, reason in _PREFIXES:
        if cid.startswith(prefix):
            return reason
    if fill.order_type == "LIQUIDATION":
        return CloseReason.LIQUIDATION
    return None


def close_reason(fill: Fill, algo_types: Mapping[int, str]) -> CloseReason:
    """Classify the close made by ``fill``.

    ``algo_types`` maps a triggered child order id to its algo order type (``STOP_MARKET``...).
    """
    reason = system_reason(fill)
    if reason is not None:
        return reason
    algo_type = algo_types.get(fill.order_id)
    if algo_type is not None and algo_type in CONDITIONAL_REASONS:
        return CONDITIONAL_REASONS[algo_type]
    for order_type in (fill.orig_type, fill.order_type):
        if order_type is not None and order_type in CONDITIONAL_REASONS:
            return CONDITIONAL_REASONS[order_type]
    return CloseReason.MANUAL
