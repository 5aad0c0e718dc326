"""The COIN-M (``/dapi``) read endpoints whose rules or rows differ from USDⓈ-M's.

Shared handlers (orders, algo orders, income) live in :mod:`.queries` and see only the path's
product through ``Params.product``. Here (binance-wave2 §B.4):

* ``userTrades``: ``symbol`` **or** ``pair`` (not both, ``-1128``); ``fromId`` and ``orderId``
  only with ``symbol``; ``fromId`` not with a time range; ≤ 7-day windows (``-1127``), no range ⇒
  the last 7 days; limit default 50, max 1000; only the past 3 months. Rows carry ``qty`` in
  contracts, ``baseQty`` in the coin, ``commission``/``realizedPnl`` in the margin coin.
* ``positionRisk``: ``marginAsset`` or ``pair``; every TRADING symbol (flat ones too); one-way
  shows ``BOTH``, hedge mode ``BOTH``, ``LONG`` and ``SHORT``; ``unRealizedProfit`` in the coin.
* ``account`` / ``balance``: one asset per margin coin.
"""

from __future__ import annotations

from decimal import Decimal

from fillstream.simulator.apierror import combination, invalid_symbol, mandatory
from fillstream.simulator.engine import LEVERAGE, TAKER_RATE, Engine
from fillstream.simulator.market import COINM, SymbolState
from fillstream.simulator.numbers import ZERO, fmt_amount, fmt_fixed
from fillstream.simulator.params import Params
from fillstream.simulator.positions import PositionState
from fillstream.simulator.queries import trade_window, user_trades
from fillstream.simulator.state import AccountState, Row


def _symbols(engine: Engine) -> list[SymbolState]:
    return [s for s in engine.symbols.values() if s.spec.product == COINM]


def _pair_symbols(engine: Engine, pair: str) -> list[str]:
    names = [s.spec.symbol for s in _symbols(engine) if s.spec.pair == pair]
    if not names:
        raise invalid_symbol()
    return names


def coinm_user_trades(acct: AccountState, params: Params, engine: Engine) -> list[Row]:
    """``GET /dapi/v1/userTrades``: by ``symbol`` (as fapi's) or by ``pair``."""
    symbol, pair = params.get("symbol"), params.get("pair")
    if symbol is None and pair is None:
        raise mandatory("symbol")
    if symbol is not None and pair is not None:
        raise combination()
    limit = params.limit(50, 1000)
    if symbol is not None:
        return user_trades(acct, Params(params.values | {"limit": str(limit)}, COINM), engine)
    assert pair is not None
    if params.get("fromId") is not None or params.get("orderId") is not None:
        raise combination()  # fromId and orderId go with symbol only
    names = _pair_symbols(engine, pair)
    start, end, newest = trade_window(params, engine.clock.wall_ms())
    cutoff = acct.cutoff(engine.clock.mono())
    rows: list[tuple[int, int, Row]] = []
    for name in names:
        log = acct.trades.get(name)
        if log is not None:
            got = log.window(start, end, 1 << 62, cutoff)
            rows.extend((_int(r["time"]), _int(r["id"]), r) for r in got)
    rows.sort(key=lambda t: (t[0], t[1]))
    ordered = [r for _, _, r in rows]
    return ordered[-limit:] if newest else ordered[:limit]


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _risk_row(sym: SymbolState, side: str, qty: Decimal, entry: Decimal, update: int) -> Row:
    spec = sym.spec
    view = PositionState(spec.symbol, side, qty=qty, entry=entry, contract_size=spec.contract_size)
    value = abs(qty) * spec.contract_size / sym.mark  # the position's worth in the coin
    return {
        "symbol": spec.symbol,
        "positionAmt": spec.fmt_qty(qty),
        "entryPrice": spec.fmt_level(entry),
        "breakEvenPrice": spec.fmt_level(view.breakeven(TAKER_RATE)),
        "markPrice": fmt_fixed(sym.mark, spec.price_precision + 6),
        "unRealizedProfit": fmt_amount(view.unrealized(sym.mark)),
        "liquidationPrice": spec.fmt_level(view.liquidation_price(LEVERAGE)),
        "leverage": str(LEVERAGE),
        "maxQty": "5000",
        "marginType": "cross",
        "isolatedMargin": "0.00000000",
        "isAutoAddMargin": "false",
        "positionSide": side,
        "notionalValue": fmt_amount(value if qty >= 0 else -value),
        "isolatedWallet": "0",
        "updateTime": update,
    }


def coinm_position_risk(acct: AccountState, params: Params, engine: Engine) -> list[Row]:
    """``GET /dapi/v1/positionRisk`` (``marginAsset`` or ``pair``; every symbol)."""
    margin_asset, pair = params.get("marginAsset"), params.get("pair")
    if margin_asset is not None and pair is not None:
        raise combination()
    chosen = _symbols(engine)
    if pair is not None:
        chosen = [s for s in chosen if s.spec.symbol in _pair_symbols(engine, pair)]
    if margin_asset is not None:
        chosen = [s for s in chosen if s.spec.margin_asset == margin_asset]
    sides = ("BOTH", "LONG", "SHORT") if acct.hedge else ("BOTH",)
    cutoff = acct.cutoff(engine.clock.mono())
    rows: list[Row] = []
    for sym in sorted(chosen, key=lambda s: s.spec.symbol):
        for side in sides:
            pos = acct.positions.get((sym.spec.symbol, side))
            if pos is None:
                rows.append(_risk_row(sym, side, ZERO, ZERO, 0))
                continue
            core = acct.view(pos, 0.0, cutoff, pos.core)
            assert core is not None
            qty, entry, update = core["qty"], core["entry"], core["update"]
            assert isinstance(qty, Decimal) and isinstance(entry, Decimal)
            assert isinstance(update, int)
            rows.append(_risk_row(sym, side, qty, entry, update))
    return rows


def _coins(acct: AccountState, engine: Engine) -> dict[str, dict[str, Decimal]]:
    """Per margin coin: wallet, unrealized PnL, initial and maintenance margin (coin)."""
    out: dict[str, dict[str, Decimal]] = {}
    for sym in _symbols(engine):
        coin = sym.spec.margin_asset
        out.setdefault(coin, {"wallet": acct.wallet(coin), "unrealized": ZERO, "initial": ZERO})
    for row in coinm_position_risk(acct, Params({}, COINM), engine):
        coin = engine.symbols[str(row["symbol"])].spec.margin_asset
        value = abs(Decimal(str(row["notionalValue"])))
        out[coin]["unrealized"] += Decimal(str(row["unRealizedProfit"]))
        out[coin]["initial"] += value / LEVERAGE
    return out


def coinm_balance(acct: AccountState, params: Params, engine: Engine) -> list[Row]:
    """``GET /dapi/v1/balance``: one row per margin coin."""
    now = engine.clock.wall_ms()
    rows: list[Row] = []
    for coin, t in sorted(_coins(acct, engine).items()):
        available = t["wallet"] + t["unrealized"] - t["initial"]
        rows.append(
            {
                "accountAlias": acct.account.alias,
                "asset": coin,
                "balance": fmt_amount(t["wallet"]),
                "withdrawAvailable": fmt_amount(available),
                "crossWalletBalance": fmt_amount(t["wallet"]),
                "crossUnPnl": fmt_amount(t["unrealized"]),
                "availableBalance": fmt_amount(available),
                "updateTime": now,
            }
        )
    return rows


def coinm_account(acct: AccountState, params: Params, engine: Engine) -> Row:
    """``GET /dapi/v1/account``: assets per margin coin and the open positions."""
    assets = []
    for coin, t in sorted(_coins(acct, engine).items()):
        available = t["wallet"] + t["unrealized"] - t["initial"]
        assets.append(
            {
                "asset": coin,
                "walletBalance": fmt_amount(t["wallet"]),
                "unrealizedProfit": fmt_amount(t["unrealized"]),
                "marginBalance": fmt_amount(t["wallet"] + t["unrealized"]),
                "maintMargin": fmt_amount(t["initial"] * Decimal("0.08")),
                "initialMargin": fmt_amount(t["initial"]),
                "positionInitialMargin": fmt_amount(t["initial"]),
                "openOrderInitialMargin": "0",
                "maxWithdrawAmount": fmt_amount(available),
                "crossWalletBalance": fmt_amount(t["wallet"]),
                "crossUnPnl": fmt_amount(t["unrealized"]),
                "availableBalance": fmt_amount(available),
            }
        )
    positions = [
        {
            "symbol": r["symbol"],
            "positionAmt": r["positionAmt"],
            "unrealizedProfit": r["unRealizedProfit"],
            "entryPrice": r["entryPrice"],
            "leverage": r["leverage"],
            "positionSide": r["positionSide"],
            "updateTime": r["updateTime"],
        }
        for r in coinm_position_risk(acct, Params({}, COINM), engine)
        if Decimal(str(r["positionAmt"])) != ZERO
    ]
    return {
        "assets": assets,
        "positions": positions,
        "canDeposit": True,
        "canTrade": True,
        "canWithdraw": True,
        "feeTier": 0,
        "updateTime": 0,
    }
