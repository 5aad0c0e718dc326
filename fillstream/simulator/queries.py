"""The read endpoints of one account: what REST shows (honouring the ``rest_lag`` fault).

Every function takes the account, the request parameters and the venue, and returns the JSON
body, or raises :class:`~fillstream.simulator.apierror.ApiError` with Binance's code.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from fillstream.simulator.apierror import ApiError, combination, invalid_symbol, no_such_order
from fillstream.simulator.engine import LEVERAGE, TAKER_RATE, Engine
from fillstream.simulator.numbers import ZERO, fmt_amount, fmt_fixed, fmt_plain
from fillstream.simulator.orders import Algo, Order
from fillstream.simulator.params import DAY_MS, Params
from fillstream.simulator.positions import PositionState
from fillstream.simulator.state import AccountState, Row


def _symbol(engine: Engine, params: Params, *, required: bool) -> str | None:
    """The ``symbol`` parameter, checked against the symbols of the path's product."""
    symbol = params.required("symbol") if required else params.get("symbol")
    if symbol is not None and not in_product(engine, symbol, params.product):
        raise invalid_symbol()
    return symbol


def in_product(engine: Engine, symbol: str, product: str) -> bool:
    """Whether ``symbol`` is served and belongs to ``product`` (``usdm`` / ``coinm``)."""
    state = engine.symbols.get(symbol)
    return state is not None and state.spec.product == product


HISTORY_MS = 90 * DAY_MS  # userTrades: "past 3 months" (change log 2026-08-26)


def trade_window(params: Params, now_ms: int) -> tuple[int, int, bool]:
    """``params.window`` for ``userTrades``: ≤ 7 days, never older than the 3-month history."""
    start, end, newest = params.window(now_ms)
    return max(start, now_ms - HISTORY_MS), end, newest


def user_trades(acct: AccountState, params: Params, engine: Engine) -> list[Row]:
    """``GET /fapi/v1/userTrades`` (symbol mandatory, ``fromId`` xor time range, ≤ 7 days)."""
    symbol = _symbol(engine, params, required=True)
    assert symbol is not None
    limit = params.limit(500, 1000)
    from_id = params.integer("fromId")
    order_id = params.integer("orderId")
    if from_id is not None and (params.get("startTime") or params.get("endTime")):
        raise combination()
    log = acct.trades.get(symbol)
    cutoff = acct.cutoff(engine.clock.mono())
    if order_id is not None:
        rows = [] if log is None else log.rows[: log.visible_end(cutoff)]
        matching = [r for r in rows if r["orderId"] == order_id]
        if from_id is not None:
            matching = [r for r in matching if _int(r["id"]) >= from_id]
        return matching[:limit]
    if from_id is not None:
        return [] if log is None else log.from_id(from_id, limit, cutoff)
    start, end, newest = trade_window(params, engine.clock.wall_ms())
    if log is None:
        return []
    if newest:
        rows = log.window(start, end, 1 << 62, cutoff)
        return rows[-limit:]
    return log.window(start, end, limit, cutoff)


def _order_rows(acct: AccountState, orders: Iterable[Order], cutoff: float | None) -> list[Row]:
    rows: list[Row] = []
    for order in orders:
        row = acct.view(order, order.created_mono, cutoff, order.rest_row)
        if row is not None:
            rows.append(row)
    return rows


def all_orders(acct: AccountState, params: Params, engine: Engine) -> list[Row]:
    """``GET /fapi/v1/allOrders`` (``orderId`` ≥, or a ≤ 7-day window)."""
    symbol = _symbol(engine, params, required=False)
    pair = params.get("pair") if params.product == "coinm" else None
    if symbol is not None and pair is not None:
        raise combination()
    limit = params.limit(500, 1000)
    order_id = params.integer("orderId")
    cutoff = acct.cutoff(engine.clock.mono())
    if symbol is None:
        orders = sorted(
            (
                o
                for o in acct.orders.values()
                if o.spec.product == params.product and pair in (None, o.spec.pair)
            ),
            key=lambda o: (o.time, o.order_id),
        )
    else:
        orders = list(acct.orders_by_symbol.get(symbol, ()))
    if order_id is not None and not (params.get("startTime") or params.get("endTime")):
        return _order_rows(acct, (o for o in orders if o.order_id >= order_id), cutoff)[:limit]
    start, end, newest = params.window(engine.clock.wall_ms())
    chosen = [
        o for o in orders if start <= o.time <= end and (order_id is None or o.order_id >= order_id)
    ]
    rows = _order_rows(acct, chosen, cutoff)
    return rows[-limit:] if newest else rows[:limit]


def _find_order(acct: AccountState, params: Params, engine: Engine) -> Order:
    symbol = _symbol(engine, params, required=True)
    assert symbol is not None
    order_id = params.integer("orderId")
    client_id = params.get("origClientOrderId")
    if order_id is None and client_id is None:
        raise ApiError(
            400,
            -1102,
            "Param 'orderId' or 'origClientOrderId' must be sent, but both were empty/null!",
        )
    if order_id is not None:
        found = acct.orders.get((symbol, order_id))
    else:
        found = next(
            (
                o
                for o in reversed(acct.orders_by_symbol.get(symbol, []))
                if o.client_order_id == client_id
            ),
            None,
        )
    if found is None:
        raise no_such_order()
    return found


def order(acct: AccountState, params: Params, engine: Engine) -> Row:
    """``GET /fapi/v1/order``; ``-2013`` for unknown ids, algo ids included."""
    found = _find_order(acct, params, engine)
    row = acct.view(found, found.created_mono, acct.cutoff(engine.clock.mono()), found.rest_row)
    if row is None:
        raise no_such_order()
    return row


def open_order(acct: AccountState, params: Params, engine: Engine) -> Row:
    row = order(acct, params, engine)
    if row["status"] not in ("NEW", "PARTIALLY_FILLED"):
        raise no_such_order()
    return row


def open_orders(acct: AccountState, params: Params, engine: Engine) -> list[Row]:
    symbol = _symbol(engine, params, required=False)
    cutoff = acct.cutoff(engine.clock.mono())
    orders = (
        o
        for o in sorted(acct.orders.values(), key=lambda o: (o.time, o.order_id))
        if symbol in (None, o.symbol) and o.spec.product == params.product
    )
    rows = _order_rows(acct, orders, cutoff)
    return [r for r in rows if r["status"] in ("NEW", "PARTIALLY_FILLED")]


def position_risk(acct: AccountState, params: Params, engine: Engine) -> list[Row]:
    """``GET /fapi/v3/positionRisk``: symbols with a position or open orders only."""
    symbol = _symbol(engine, params, required=False)
    cutoff = acct.cutoff(engine.clock.mono())
    shown: list[tuple[PositionState, Decimal, Decimal, int]] = []
    active_symbols = {o.symbol for o in acct.open_orders.values()}
    for pos in acct.positions.values():
        if symbol not in (None, pos.symbol) or not in_product(engine, pos.symbol, "usdm"):
            continue
        core = acct.view(pos, 0.0, cutoff, pos.core)
        assert core is not None
        qty, entry, update = core["qty"], core["entry"], core["update"]
        assert isinstance(qty, Decimal) and isinstance(entry, Decimal) and isinstance(update, int)
        if qty != ZERO or pos.symbol in active_symbols:
            shown.append((pos, qty, entry, update))
    rows: list[Row] = []
    for pos, qty, entry, update in sorted(shown, key=lambda s: (s[0].symbol, s[0].position_side)):
        mark = engine.symbols[pos.symbol].mark
        spec = engine.symbols[pos.symbol].spec
        view = PositionState(pos.symbol, pos.position_side, qty=qty, entry=entry)
        notional = qty * mark
        initial = abs(notional) / LEVERAGE
        rows.append(
            {
                "symbol": pos.symbol,
                "positionSide": pos.position_side,
                "positionAmt": fmt_plain(qty),
                "entryPrice": spec.fmt_level(entry),
                "breakEvenPrice": spec.fmt_level(view.breakeven(TAKER_RATE)),
                "markPrice": fmt_fixed(mark, spec.price_precision + 6),
                "unRealizedProfit": fmt_amount(view.unrealized(mark)),
                "liquidationPrice": spec.fmt_level(view.liquidation_price(LEVERAGE)),
                "isolatedMargin": "0",
                "notional": fmt_amount(notional),
                "marginAsset": "USDT",
                "isolatedWallet": "0",
                "initialMargin": fmt_amount(initial),
                "maintMargin": fmt_amount(abs(notional) * Decimal("0.004")),
                "positionInitialMargin": fmt_amount(initial),
                "openOrderInitialMargin": "0",
                "adl": 2 if qty else 0,
                "bidNotional": "0",
                "askNotional": "0",
                "updateTime": update,
            }
        )
    return rows


def position_risk_v2(acct: AccountState, params: Params, engine: Engine) -> list[Row]:
    """``GET /fapi/v2/positionRisk``: every symbol (or ``symbol``), flat ones included.

    One-way mode shows ``BOTH``, hedge mode ``LONG`` and ``SHORT``; the v2 field set (leverage,
    ``maxNotionalValue``, ``marginType``, ``isAutoAddMargin`` as strings).
    """
    symbol = _symbol(engine, params, required=False)
    cutoff = acct.cutoff(engine.clock.mono())
    sides = ("LONG", "SHORT") if acct.hedge else ("BOTH",)
    rows: list[Row] = []
    for name in sorted(engine.symbols):
        if symbol not in (None, name) or not in_product(engine, name, "usdm"):
            continue
        sym = engine.symbols[name]
        for side in sides:
            pos = acct.positions.get((name, side)) or PositionState(name, side)
            core = acct.view(pos, 0.0, cutoff, pos.core)
            assert core is not None
            qty, entry, update = core["qty"], core["entry"], core["update"]
            assert isinstance(qty, Decimal) and isinstance(entry, Decimal)
            view = PositionState(name, side, qty=qty, entry=entry)
            notional = qty * sym.mark
            rows.append(
                {
                    "symbol": name,
                    "positionAmt": sym.spec.fmt_qty(qty),
                    "entryPrice": sym.spec.fmt_level(entry),
                    "breakEvenPrice": sym.spec.fmt_level(view.breakeven(TAKER_RATE)),
                    "markPrice": fmt_fixed(sym.mark, sym.spec.price_precision + 6),
                    "unRealizedProfit": fmt_amount(view.unrealized(sym.mark)),
                    "liquidationPrice": sym.spec.fmt_level(view.liquidation_price(LEVERAGE)),
                    "leverage": str(LEVERAGE),
                    "maxNotionalValue": "250000",
                    "marginType": "cross",
                    "isolatedMargin": "0.00000000",
                    "isAutoAddMargin": "false",
                    "positionSide": side,
                    "notional": fmt_amount(notional),
                    "isolatedWallet": "0",
                    "updateTime": update,
                }
            )
    return rows


def _income_page(params: Params) -> int:
    """``page`` (fapi): 1 when absent. ``/dapi/v1/income`` no longer reads it (2026-10-16):
    a request that sends it is refused (``-1104``); paginate by ``startTime`` instead."""
    if params.product == "coinm":
        if params.get("page") is not None:
            read = len([k for k in params.values if k not in ("page", "signature")])
            sent = read + 1
            raise ApiError(
                400,
                -1104,
                f"Not all sent parameters were read; read '{read}' parameter(s) but was sent "
                f"'{sent}'.",
            )
        return 1
    page = params.integer("page", 1)
    assert page is not None
    if page < 1:
        raise ApiError(400, -1130, "Data sent for parameter 'page' is not valid.")
    return page


def income(acct: AccountState, params: Params, engine: Engine) -> list[Row]:
    """``GET /fapi/v1/income`` and ``/dapi/v1/income`` (REALIZED_PNL, COMMISSION, FUNDING_FEE,
    DELIVERED_SETTELMENT; ``tradeId`` linked). Oldest first from ``startTime``; without it the
    newest ``limit`` rows. Windows: 90 days (fapi), 1 year (dapi)."""
    symbol = _symbol(engine, params, required=False)
    income_type = params.get("incomeType")
    limit = params.limit(100, 1000)
    page = _income_page(params)
    max_ms = (365 if params.product == "coinm" else 90) * DAY_MS
    start, end, newest = params.window(engine.clock.wall_ms(), max_ms=max_ms)
    cutoff = acct.cutoff(engine.clock.mono())
    rows = [
        row
        for row, t, mono in zip(acct.income, acct.income_times, acct.income_monos, strict=True)
        if start <= t <= end
        and (cutoff is None or mono <= cutoff)
        and symbol in (None, row["symbol"])
        and income_type in (None, row["incomeType"])
        and in_product(engine, str(row["symbol"]), params.product)
    ]
    offset = (page - 1) * limit
    if newest:
        stop = len(rows) - offset
        return rows[max(0, stop - limit) : max(0, stop)]
    return rows[offset : offset + limit]


def _algo_rows(acct: AccountState, algos: Iterable[Algo], cutoff: float | None) -> list[Row]:
    rows: list[Row] = []
    for algo in algos:
        row = acct.view(algo, algo.created_mono, cutoff, algo.rest_row)
        if row is not None:
            rows.append(row)
    return rows


def algo_order(acct: AccountState, params: Params, engine: Engine) -> Row:
    """``GET /fapi/v1/algoOrder`` by ``algoId`` or ``clientAlgoId``."""
    algo_id = params.integer("algoId")
    client_id = params.get("clientAlgoId")
    if algo_id is None and client_id is None:
        raise ApiError(
            400,
            -1102,
            "Param 'algoId' or 'clientAlgoId' must be sent, but both were empty/null!",
        )
    found: Algo | None
    if algo_id is not None:
        found = acct.algos.get(algo_id)
    else:
        found = next(
            (a for a in reversed(acct.algos.values()) if a.client_algo_id == client_id), None
        )
    if found is None or found.spec.product != params.product:
        raise no_such_order()
    rows = _algo_rows(acct, (found,), acct.cutoff(engine.clock.mono()))
    if not rows:
        raise no_such_order()
    return rows[0]


def open_algo_orders(acct: AccountState, params: Params, engine: Engine) -> list[Row]:
    symbol = _symbol(engine, params, required=False)
    algo_id = params.integer("algoId")
    rows = _algo_rows(
        acct,
        (
            a
            for a in acct.algos.values()
            if symbol in (None, a.symbol)
            and algo_id in (None, a.algo_id)
            and a.spec.product == params.product
        ),
        acct.cutoff(engine.clock.mono()),
    )
    return [r for r in rows if r["algoStatus"] in ("NEW", "TRIGGERING")]


def all_algo_orders(acct: AccountState, params: Params, engine: Engine) -> list[Row]:
    """``GET /fapi/v1/allAlgoOrders`` (symbol mandatory, ``algoId`` ≥, ≤ 7-day window)."""
    symbol = _symbol(engine, params, required=True)
    limit = params.limit(500, 1000)
    algo_id = params.integer("algoId")
    cutoff = acct.cutoff(engine.clock.mono())
    algos = [a for a in acct.algos.values() if a.symbol == symbol]
    if algo_id is not None and not (params.get("startTime") or params.get("endTime")):
        return _algo_rows(acct, (a for a in algos if a.algo_id >= algo_id), cutoff)[:limit]
    start, end, newest = params.window(engine.clock.wall_ms())
    chosen = [
        a
        for a in algos
        if start <= a.create_time <= end and (algo_id is None or a.algo_id >= algo_id)
    ]
    rows = _algo_rows(acct, chosen, cutoff)
    return rows[-limit:] if newest else rows[:limit]


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _totals(acct: AccountState, rows: list[Row]) -> dict[str, Decimal]:
    def total(name: str) -> Decimal:
        return sum((Decimal(str(r[name])) for r in rows), ZERO)

    wallet = acct.balance
    unrealized = total("unRealizedProfit")
    initial = total("initialMargin")
    available = wallet + unrealized - initial
    return {
        "wallet": wallet,
        "unrealized": unrealized,
        "initial": initial,
        "maint": total("maintMargin"),
        "available": available,
    }


def account(acct: AccountState, params: Params, engine: Engine) -> Row:
    """``GET /fapi/v2/account`` and ``/fapi/v3/account`` (single-asset mode, USDT)."""
    rows = position_risk(acct, Params({}), engine)
    t = _totals(acct, rows)
    now = engine.clock.wall_ms()
    amounts = {
        "walletBalance": fmt_amount(t["wallet"]),
        "unrealizedProfit": fmt_amount(t["unrealized"]),
        "marginBalance": fmt_amount(t["wallet"] + t["unrealized"]),
        "maintMargin": fmt_amount(t["maint"]),
        "initialMargin": fmt_amount(t["initial"]),
        "positionInitialMargin": fmt_amount(t["initial"]),
        "openOrderInitialMargin": "0",
        "crossWalletBalance": fmt_amount(t["wallet"]),
        "crossUnPnl": fmt_amount(t["unrealized"]),
        "availableBalance": fmt_amount(t["available"]),
        "maxWithdrawAmount": fmt_amount(t["available"]),
    }
    return {
        "feeTier": 0,
        "feeBurn": False,
        "canTrade": True,
        "canDeposit": True,
        "canWithdraw": True,
        "updateTime": 0,
        "multiAssetsMargin": False,
        "tradeGroupId": -1,
        "totalInitialMargin": amounts["initialMargin"],
        "totalMaintMargin": amounts["maintMargin"],
        "totalWalletBalance": amounts["walletBalance"],
        "totalUnrealizedProfit": amounts["unrealizedProfit"],
        "totalMarginBalance": amounts["marginBalance"],
        "totalPositionInitialMargin": amounts["initialMargin"],
        "totalOpenOrderInitialMargin": "0",
        "totalCrossWalletBalance": amounts["walletBalance"],
        "totalCrossUnPnl": amounts["unrealizedProfit"],
        "availableBalance": amounts["availableBalance"],
        "maxWithdrawAmount": amounts["availableBalance"],
        "assets": [{"asset": "USDT", **amounts, "marginAvailable": True, "updateTime": now}],
        "positions": [
            {
                "symbol": r["symbol"],
                "positionSide": r["positionSide"],
                "positionAmt": r["positionAmt"],
                "unrealizedProfit": r["unRealizedProfit"],
                "isolatedMargin": "0",
                "notional": r["notional"],
                "isolatedWallet": "0",
                "initialMargin": r["initialMargin"],
                "maintMargin": r["maintMargin"],
                "updateTime": r["updateTime"],
            }
            for r in rows
            if r["positionAmt"] != "0"
        ],
    }


def balance(acct: AccountState, params: Params, engine: Engine) -> list[Row]:
    """``GET /fapi/v2/balance`` and ``/fapi/v3/balance``."""
    t = _totals(acct, position_risk(acct, Params({}), engine))
    return [
        {
            "accountAlias": "SgsR",
            "asset": "USDT",
            "balance": fmt_amount(t["wallet"]),
            "crossWalletBalance": fmt_amount(t["wallet"]),
            "crossUnPnl": fmt_amount(t["unrealized"]),
            "availableBalance": fmt_amount(t["available"]),
            "maxWithdrawAmount": fmt_amount(t["available"]),
            "marginAvailable": True,
            "updateTime": engine.clock.wall_ms(),
        }
    ]
