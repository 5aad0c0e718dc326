"""docs/schemas, docs/subjects.md and docs/asyncapi.yaml agree with the code.

* The committed JSON Schemas are exactly what ``scripts/gen_schemas.py`` generates from the msgspec
  payload types (drift fails), and they are valid JSON Schema 2020-12.
* Payloads built by fillstream's own outbox code validate against them; so does every JSON
  example in subjects.md.
* The AsyncAPI document's channel addresses are the subjects ``fillstream.ledger.subjects``
  builds, its header patterns accept the message ids it builds, and it names every schema.
"""

from __future__ import annotations

import json
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator, ValidationError

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
)
from fillstream.storage import payloads
from tests.deploy.support import DOCS, ROOT, run

SCHEMAS = DOCS / "schemas"
PREFIX = "fillstream"


def _schema(schema_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMAS / f"{schema_id.replace('/', '.')}.json").read_text())
    return data


def _validate(document: dict[str, Any]) -> None:
    Draft202012Validator(_schema(document["schema"])).validate(document)


def _fill(**overrides: Any) -> Fill:
    values: dict[str, Any] = {
        "account": "alpha",
        "market": Market.USDM,
        "symbol": "BTCUSDT",
        "trade_id": 6123456789,
        "order_id": 812345678901,
        "side": Side.SELL,
        "position_side": PositionSide.BOTH,
        "price": Decimal("76950.00"),
        "qty": Decimal("0.004"),
        "quote_qty": Decimal("307.80000"),
        "commission": Decimal("0.12312000"),
        "commission_asset": "USDT",
        "realized_pnl": Decimal("1.84000000"),
        "maker": True,
        "trade_time_ms": 1789478401230,
        "source": FillSource.STREAM,
    }
    return Fill(**{**values, **overrides})


def _order() -> OrderUpdate:
    return OrderUpdate(
        account="beta-2",
        market=Market.COINM,
        symbol="BTCUSD_PERP",
        order_id=812345678901,
        client_order_id="autoclose-1789478401230",
        side=Side.BUY,
        position_side=PositionSide.SHORT,
        order_type="MARKET",
        orig_type="MARKET",
        status="FILLED",
        price=Decimal("0"),
        avg_price=Decimal("76950.1"),
        orig_qty=Decimal("3"),
        filled_qty=Decimal("3"),
        stop_price=Decimal("0"),
        reduce_only=True,
        close_position=False,
        update_time_ms=1789478401230,
        source=FillSource.RECONCILE,
    )


def _close(reason: CloseReason = CloseReason.STOP_LOSS, revision: int = 0) -> PositionClose:
    return PositionClose(
        account="alpha",
        market=Market.USDM,
        symbol="ETHUSDT",
        position_side=PositionSide.LONG,
        reason=reason,
        close_trade_id=991,
        close_order_id=881,
        qty=Decimal("1.5"),
        entry_price=Decimal("3000"),
        exit_price=Decimal("2950.5"),
        realized_pnl=Decimal("-74.25"),
        fees={"USDT": Decimal("1.2"), "BNB": Decimal("0.001")},
        funding=None,
        opened_at_ms=1789470000000,
        closed_at_ms=1789478401230,
        closing_fills=(FillKey("alpha", Market.USDM, "ETHUSDT", 991, 881),),
        source=FillSource.RECONCILE,
        revision=revision,
    )


def _messages() -> list[payloads.OutboxMessage]:
    """One outbox message of every kind, built by the code the relay publishes from."""
    correction = PositionCorrection(
        account="alpha",
        market=Market.USDM,
        symbol="ETHUSDT",
        position_side=PositionSide.BOTH,
        qty=Decimal("-0.5"),
        entry_price=Decimal("2999.9"),
        time_ms=1789478460000,
    )
    status = StatusChange(
        account="alpha",
        market=Market.USDM,
        state=StreamState.AUTH_FAILED,
        previous=None,
        reason="auth",
        time_ms=1789478402000,
    )
    return [
        payloads.fill_message(PREFIX, _fill()),
        payloads.fill_message(
            PREFIX,
            _fill(
                source=FillSource.RECONCILE,
                client_order_id="x",
                order_type="LIMIT",
                orig_type="STOP",
                reduce_only=True,
                event_time_ms=1789478401234,
            ),
        ),
        payloads.order_message(PREFIX, _order()),
        payloads.close_message(PREFIX, _close()),
        payloads.close_message(PREFIX, _close(revision=2)),
        payloads.close_message(PREFIX, _close(CloseReason.RECONCILED_UNKNOWN)),
        payloads.correction_message(PREFIX, correction),
        payloads.retraction_message(PREFIX, _close(), FillSource.RECONCILE),
        payloads.status_message(PREFIX, status),
        *(payloads.balance_message(PREFIX, b) for b in _balances()),
    ]


def _balances() -> list[BalanceChange]:
    """A spot account's balance facts of each kind."""
    common: dict[str, Any] = {"account": "gamma", "market": Market.SPOT}
    return [
        BalanceChange(
            **common,
            asset="BTC",
            kind=BalanceKind.POSITION,
            time_ms=1789478401230,
            event_time_ms=1789478401231,
            source=FillSource.STREAM,
            free=Decimal("0.01000000"),
            locked=Decimal("0.00000000"),
        ),
        BalanceChange(
            **common,
            asset="USDT",
            kind=BalanceKind.DELTA,
            time_ms=1789478402000,
            event_time_ms=1789478402003,
            source=FillSource.STREAM,
            delta=Decimal("-250.00000000"),
        ),
        BalanceChange(
            **common,
            asset="BNB",
            kind=BalanceKind.EXTERNAL_LOCK,
            time_ms=1789478403000,
            event_time_ms=1789478403001,
            source=FillSource.RECONCILE,
            delta=Decimal("0.5"),
        ),
    ]


# ----------------------------------------------------------------------------------- JSON Schema


def test_committed_schemas_match_the_code() -> None:
    done = run(sys.executable, ROOT / "scripts" / "gen_schemas.py", "--check")
    assert done.returncode == 0, done.stderr


def test_schema_drift_is_detected(tmp_path: Path) -> None:
    for path in SCHEMAS.glob("*.json"):
        (tmp_path / path.name).write_text(path.read_text())
    fill = tmp_path / "fill.v1.json"
    fill.write_text(fill.read_text().replace('"trade_id"', '"tradeId"'))
    done = run(sys.executable, ROOT / "scripts" / "gen_schemas.py", "--check", "--out", tmp_path)
    assert done.returncode == 1
    assert "fill.v1.json" in done.stderr


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.json")), ids=lambda p: p.name)
def test_schemas_are_valid_json_schema(path: Path) -> None:
    schema = json.loads(path.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_published_payloads_validate_against_their_schemas() -> None:
    kinds = set()
    for message in _messages():
        document = json.loads(message.payload)
        _validate(document)
        kinds.add(document["schema"])
    assert kinds == set(payloads.json_schemas())


def test_schemas_reject_floats_for_amounts() -> None:
    document = json.loads(payloads.fill_message(PREFIX, _fill()).payload)
    document["price"] = 76950.0
    with pytest.raises(ValidationError, match="is not of type 'string'"):
        _validate(document)


# ------------------------------------------------------------------------------------ subjects.md


def _json_examples(markdown: str) -> list[dict[str, Any]]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", markdown, re.S)]


def test_subjects_md_examples_validate() -> None:
    examples = _json_examples((DOCS / "subjects.md").read_text())
    assert {e["schema"] for e in examples} == set(payloads.json_schemas())
    for example in examples:
        _validate(example)


# -------------------------------------------------------------------------------------- AsyncAPI


def _asyncapi() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DOCS / "asyncapi.yaml").read_text())
    return data


def _channel_for(spec: dict[str, Any], subject: str) -> tuple[str, dict[str, Any]]:
    """The channel whose address template matches ``subject`` (parameters: one token each)."""
    for name, channel in spec["channels"].items():
        pattern = re.sub(r"\\\{\w+\\\}", "[^.]+", re.escape(channel["address"]))
        if re.fullmatch(pattern, subject):
            return name, channel
    raise AssertionError(f"no AsyncAPI channel matches {subject}")


def _message_spec(spec: dict[str, Any], channel: dict[str, Any]) -> dict[str, Any]:
    (ref,) = [m["$ref"] for m in channel["messages"].values()]
    message: dict[str, Any] = spec["components"]["messages"][ref.rsplit("/", 1)[1]]
    return message


def test_asyncapi_describes_every_published_message() -> None:
    spec = _asyncapi()
    assert spec["asyncapi"] == "3.0.0"
    seen_channels = set()
    for message in _messages():
        name, channel = _channel_for(spec, message.subject)
        seen_channels.add(name)
        described = _message_spec(spec, channel)
        payload_file = DOCS / described["payload"]["$ref"]
        assert (
            json.loads(message.payload)["schema"] == json.loads(payload_file.read_text())["title"]
        )
        headers_ref = described["headers"]["$ref"].rsplit("/", 1)[1]
        header = spec["components"]["schemas"][headers_ref]["properties"]["Nats-Msg-Id"]
        assert re.fullmatch(header["pattern"], message.msg_id), (message.msg_id, header)
    assert seen_channels == set(spec["channels"])


def test_asyncapi_operations_and_schema_files() -> None:
    spec = _asyncapi()
    for name, operation in spec["operations"].items():
        assert operation["action"] == "send", name
        channel = operation["channel"]["$ref"].rsplit("/", 1)[1]
        assert channel in spec["channels"], name
    referenced = {m["payload"]["$ref"] for m in spec["components"]["messages"].values()}
    assert referenced == {f"./schemas/{p.name}" for p in SCHEMAS.glob("*.json")}
    markets = spec["components"]["parameters"]["market"]["enum"]
    assert set(markets) == {m.value for m in Market}
