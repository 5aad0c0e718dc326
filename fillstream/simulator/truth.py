"""The ground truth: every fill, order and position close the simulator produced, per account.

Shape (design.md §5 "Stable surface")::

    {"accounts": {"<name>": {
        "fills": [<userTrades row> + "account"],           # generation order
        "closes": [{"symbol", "positionSide", "reason", "realizedPnl", "closeTradeId",
                    "closeOrderId", "qty", "entryPrice", "fees", "openedAt", "closedAt"}],
        "orders": [<allOrders row> + "account"],           # final state, placement order
        "algo_orders": [<allAlgoOrders row>],
        "positions": [{"symbol", "positionSide", "positionAmt", "entryPrice"}],  # non-zero only
        "fills_generated": n,
        "dropped_fill_events": n,      # fill events the drop/drop_rate faults swallowed
        "undelivered_fill_events": n,  # fill events no live socket received (none connected,
                                       # key expired, socket silent)
    }}}

``"market"`` is the account's product (what its generator trades; ``usdm`` or ``coinm``). An
account's records of both products are listed together (a symbol names its product; COIN-M
``fills`` have ``qty`` in contracts and money in ``marginAsset``; COIN-M closes add
``marginAsset`` and ``contractSize``); ``?market=coinm`` (``ground_truth(market=...)``) keeps one
product's records only.

Determinism: with the same seed and the same number of generator rounds, the ground truth is
byte-identical **except** wall-clock times. ``stable=True`` leaves those out (``time``,
``updateTime``, ``createTime``, ``triggerTime``, ``openedAt``, ``closedAt``, spot
``workingTime``), so that form is byte-identical across runs. Spot accounts: :mod:`.spot_truth`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import msgspec

from fillstream.simulator.numbers import fmt_plain
from fillstream.simulator.state import AccountState, Row

TIME_FIELDS = frozenset(
    {"time", "updateTime", "createTime", "triggerTime", "openedAt", "closedAt", "workingTime"}
)


def tagged_rows(
    rows: Iterable[Row], extra: Row, stable: bool, symbols: Collection[str] | None = None
) -> list[Row]:
    if symbols is not None:
        rows = [r for r in rows if r["symbol"] in symbols]
    if stable:
        return [{k: v for k, v in r.items() if k not in TIME_FIELDS} | extra for r in rows]
    return [r | extra for r in rows]


def account_truth(
    acct: AccountState, *, stable: bool = False, symbols: Collection[str] | None = None
) -> dict[str, object]:
    tag: Row = {"account": acct.name}
    orders = (o.rest_row() for o in acct.orders.values())
    return {
        "market": acct.market,
        "fills": tagged_rows(acct.fills, tag, stable, symbols),
        "closes": tagged_rows(acct.closes, {}, stable, symbols),
        "orders": tagged_rows(orders, tag, stable, symbols),
        "algo_orders": tagged_rows(
            (a.rest_row() for a in acct.algos.values()), {}, stable, symbols
        ),
        "positions": [
            {
                "symbol": p.symbol,
                "positionSide": p.position_side,
                "positionAmt": fmt_plain(p.qty),
                "entryPrice": fmt_plain(p.entry),
            }
            for p in acct.open_positions()
            if symbols is None or p.symbol in symbols
        ],
        "fills_generated": acct.fills_generated,
        "dropped_fill_events": acct.dropped_fill_events,
        "undelivered_fill_events": acct.undelivered_fill_events,
    }


def ground_truth(
    accounts: Iterable[AccountState],
    *,
    stable: bool = False,
    symbols: Collection[str] | None = None,
) -> dict[str, Any]:
    return {
        "accounts": {a.name: account_truth(a, stable=stable, symbols=symbols) for a in accounts}
    }


def ground_truth_bytes(
    accounts: Iterable[AccountState],
    *,
    stable: bool = False,
    symbols: Collection[str] | None = None,
) -> bytes:
    return msgspec.json.encode(ground_truth(accounts, stable=stable, symbols=symbols))
