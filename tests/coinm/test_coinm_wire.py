"""COIN-M on the wire: events (alias ``i``, ``ma``, contracts, coin commission), the
unknown-event-safe decoder, rows, config, URLs and the shared weight pool."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from fillstream.binance.budget import WeightBudgets, host_of
from fillstream.binance.coinm import parse
from fillstream.binance.coinm.events import COINM_EVENT_TYPES, AccountUpdate, OrderTradeUpdate
from fillstream.binance.coinm.rows import ExchangeInfo, UserTrade
from fillstream.binance.endpoints import COINM_ENDPOINTS, default_rest_url
from fillstream.binance.usdm.events import AlgoUpdate
from fillstream.ledger import Market, PositionBook, Side
from fillstream.ledger.errors import MalformedInput
from fillstream.sidecar.config import load_config
from fillstream.simulator import SimConfig, Simulator, client_config
from fillstream.storage.payloads import close_body, fill_message
from fillstream.stream.decode import FrameDecoder, FrameError
from tests.coinm.test_inverse_book import _fill

D = Decimal
ORDER = {
    "e": "ORDER_TRADE_UPDATE",
    "E": 1591274595442,
    "T": 1591274595453,
    "i": "SfsR",
    "o": {
        "s": "BTCUSD_250926",
        "c": "TEST",
        "S": "SELL",
        "o": "LIMIT",
        "f": "GTC",
        "q": "2",
        "p": "60000",
        "ap": "60000",
        "sp": "0",
        "x": "TRADE",
        "X": "FILLED",
        "i": 8886774,
        "l": "2",
        "z": "2",
        "L": "60000",
        "ma": "BTC",
        "N": "BTC",
        "n": "0.00000167",
        "T": 1591274595442,
        "t": 1913392,
        "rp": "0.00012345",
        "b": "0",
        "a": "0",
        "m": False,
        "R": False,
        "wt": "CONTRACT_PRICE",
        "ot": "LIMIT",
        "ps": "BOTH",
        "cp": False,
        "pP": False,
        "V": "NONE",
        "pm": "NONE",
        "er": "0",
    },
}


def _decode(frame: object) -> object:
    return FrameDecoder(COINM_EVENT_TYPES).decode(json.dumps(frame).encode())


def test_order_trade_update_is_a_fill_in_contracts_and_coin() -> None:
    event = _decode(ORDER)
    assert isinstance(event, OrderTradeUpdate)
    assert (event.i, event.o.ma) == ("SfsR", "BTC")
    fill = parse.stream_fill(event, "cm")
    assert fill is not None
    assert (fill.market, fill.qty, fill.price, fill.side) == (
        Market.COINM,
        D(2),
        D(60000),
        Side.SELL,
    )
    assert (fill.commission, fill.commission_asset, fill.realized_pnl) == (
        D("0.00000167"),
        "BTC",
        D("0.00012345"),
    )
    assert parse.base_qty_of(fill, D(100)) == D(2) * 100 / D(60000)
    body = json.loads(fill_message("fs", fill).payload)
    assert (body["qty_unit"], body["margin_asset"]) == ("contracts", "BTC")


def test_a_fill_in_another_coin_is_malformed() -> None:
    frame = {**ORDER, "o": {**ORDER["o"], "ma": "ETH"}}  # type: ignore[dict-item]
    event = _decode(frame)
    assert isinstance(event, OrderTradeUpdate)
    with pytest.raises(MalformedInput, match="margin asset"):
        parse.stream_fill(event, "cm")


def test_account_update_alias_and_unknown_events() -> None:
    update = {
        "e": "ACCOUNT_UPDATE",
        "E": 1,
        "T": 1,
        "i": "SfsR",
        "a": {"m": "ORDER", "B": [{"a": "BTC", "wb": "1", "cw": "1", "bc": "0"}],
              "P": [{"s": "BTCUSD_PERP", "pa": "-3", "ep": "61000", "cr": "0", "up": "0",
                     "mt": "cross", "iw": "0", "ps": "BOTH"}]},
    }  # fmt: skip
    event = _decode(update)
    assert isinstance(event, AccountUpdate) and event.i == "SfsR"
    (pos,) = parse.positions_from_account_update(event, "cm", Market.COINM)
    assert (pos.qty, pos.entry_price) == (D(-3), D(61000))
    algo = {"e": "ALGO_UPDATE", "E": 2, "o": {"aid": 5, "s": "BTCUSD_PERP", "X": "NEW"}}
    assert isinstance(_decode(algo), AlgoUpdate)  # unconfirmed on COIN-M: decoded if it comes
    for unknown in ({"e": "TRADE_LITE", "E": 1}, {"e": "SOMETHING_NEW", "E": 1}):
        with pytest.raises(FrameError) as info:
            _decode(unknown)
        assert info.value.kind == "unknown"


def test_user_trade_row_and_contract_sizes() -> None:
    row = msgspec.convert(
        {"symbol": "BTCUSD_PERP", "id": 7, "orderId": 9, "pair": "BTCUSD", "side": "BUY",
         "price": "50000", "qty": "10", "realizedPnl": "0", "marginAsset": "BTC",
         "baseQty": "0.02", "commission": "0.00001", "commissionAsset": "BTC", "time": 5,
         "positionSide": "BOTH", "buyer": True, "maker": False},
        UserTrade,
    )  # fmt: skip
    fill = parse.trade_fill(row, account="cm", info=None)
    assert parse.base_qty_of(fill, D(100)) == D(row.baseQty or "")
    info = msgspec.json.decode(
        b'{"symbols": [{"symbol": "BTCUSD_PERP", "contractSize": 100, "marginAsset": "BTC"},'
        b' {"symbol": "ETHUSD_PERP", "contractSize": 10}, {"symbol": "X", "contractSize": 0}]}',
        type=ExchangeInfo,
    )
    assert parse.contract_sizes(info) == {"BTCUSD_PERP": D(100), "ETHUSD_PERP": D(10)}


def test_one_weight_pool_for_both_products() -> None:
    budgets = WeightBudgets()
    usdm = budgets.for_url(default_rest_url(Market.USDM, "mainnet"))
    assert budgets.for_url(default_rest_url(Market.COINM, "mainnet")) is usdm
    assert host_of("https://demo-dapi.binance.com") == "demo-fapi.binance.com"
    assert COINM_ENDPOINTS["userTrades"].weight == 5  # flat since the CM-UM integration
    assert COINM_ENDPOINTS["positionRisk"].version == 1
    assert "algoOrder" in COINM_ENDPOINTS


def test_coinm_account_config_streams_from_dstream(tmp_path: Path) -> None:
    path = tmp_path / "fillstream.toml"
    path.write_text(
        '[database]\ndsn = "postgresql://f@127.0.0.1:5433/f"\n\n[[accounts]]\nname = "cm"\n'
        'market = "coinm"\napi_key_env = "K"\napi_secret_env = "S"\n'
    )
    config = load_config(path, {"K": "k" * 20, "S": "s" * 20})
    (account,) = config.accounts
    settings = account.stream_settings
    assert account.resolved_rest_url == "https://dapi.binance.com"
    assert settings.url("abc") == "wss://dstream.binance.com/ws/abc"
    assert "TRADE_LITE" not in settings.events


def test_close_payload_names_the_margin_coin() -> None:

    book = PositionBook("cm", Market.COINM)
    book.apply([_fill(1, Side.BUY, "1", "50000", D(0))])
    (close,) = book.apply(
        [_fill(2, Side.SELL, "1", "40000", D("-0.0005"), cid="autoclose-1")]
    ).closes
    body = close_body(close)
    assert (body.qty_unit, body.margin_asset, body.pnl_asset) == ("contracts", "BTC", "BTC")
    assert body.reason == "liquidation"


async def test_the_simulators_written_config_loads_and_streams_where_it_says(
    tmp_path: Path,
) -> None:
    config = SimConfig(accounts=("um", "cm"), coinm_accounts=("cm",), rate=0)
    async with Simulator(config) as sim:
        path = client_config.write(
            tmp_path / "fs.toml",
            sim.accounts,
            rest_url=sim.rest_url,
            ws_url=sim.ws_url,
            symbols=config.symbols,
            coinm_symbols=config.coinm_symbols,
        )
        loaded = load_config(path, {"FILLSTREAM_DSN": "postgresql://f@127.0.0.1:5433/f"})
        ready = {a["name"]: a for a in sim.ready_info()["accounts"]}  # type: ignore[attr-defined]
    for account in loaded.accounts:
        expected = ready[account.name]
        assert account.market == expected["market"]
        url = account.stream_settings.url("KEY")
        path_form = str(expected["stream_url"]).replace("{listenKey}", "KEY")
        if account.market is Market.COINM:
            assert url == path_form  # dstream's /ws/<key>
        else:  # USDⓈ-M takes the query form of the same route by default
            assert url.startswith(path_form.removesuffix("/KEY") + "?listenKey=KEY&events=")
