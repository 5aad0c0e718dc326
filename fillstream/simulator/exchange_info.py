"""``GET /fapi/v1/exchangeInfo`` and ``/dapi/v1/exchangeInfo``: the product's symbols and the
rate limits in force (one pool per IP for both products since the 2026 CM-UM integration)."""

from __future__ import annotations

from fillstream.simulator.engine import Engine
from fillstream.simulator.market import COINM, USDM

ORDER_TYPES = ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
               "TRAILING_STOP_MARKET"]  # fmt: skip


def _rate_limits(weight_limit: int) -> list[dict[str, object]]:
    return [
        {
            "rateLimitType": "REQUEST_WEIGHT",
            "interval": "MINUTE",
            "intervalNum": 1,
            "limit": weight_limit,
        },
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
    ]


def _coinm_filters(tick: str) -> list[dict[str, object]]:
    return [
        {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "4529764", "tickSize": tick},
        {"filterType": "LOT_SIZE", "minQty": "1", "maxQty": "1000000", "stepSize": "1"},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "1", "maxQty": "60000", "stepSize": "1"},
        {"filterType": "MAX_NUM_ORDERS", "limit": 200},
        {
            "filterType": "PERCENT_PRICE",
            "multiplierUp": "1.0500",
            "multiplierDown": "0.9500",
            "multiplierDecimal": 4,
        },
    ]


def coinm_exchange_info(engine: Engine, weight_limit: int) -> dict[str, object]:
    """``/dapi/v1/exchangeInfo``: contract names, ``contractSize`` (USD), delivery dates."""
    symbols: list[dict[str, object]] = []
    for state in engine.symbols.values():
        spec = state.spec
        if spec.product != COINM:
            continue
        tick = format(spec.tick, "f")
        symbols.append(
            {
                "symbol": spec.symbol,
                "pair": spec.pair,
                "contractType": "PERPETUAL" if spec.perpetual else "CURRENT_QUARTER",
                "deliveryDate": spec.delivery_ms,
                "onboardDate": 1597042800000,
                "contractStatus": "TRADING",
                "contractSize": int(spec.contract_size),
                "quoteAsset": "USD",
                "baseAsset": spec.base_asset,
                "marginAsset": spec.margin_asset,
                "pricePrecision": spec.price_precision,
                "quantityPrecision": 0,
                "baseAssetPrecision": 8,
                "quotePrecision": 8,
                "equalQtyPrecision": 4,
                "maxMoveOrderLimit": 10000,
                "triggerProtect": "0.0500",
                "underlyingType": "COIN",
                "underlyingSubType": [],
                "filters": _coinm_filters(tick),
                "orderTypes": ORDER_TYPES,
                "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
                "liquidationFee": "0.010000",
                "marketTakeBound": "0.05",
            }
        )
    return {
        "timezone": "UTC",
        "serverTime": engine.clock.server_ms(),
        "rateLimits": _rate_limits(weight_limit),
        "exchangeFilters": [],
        "symbols": symbols,
    }


def exchange_info(engine: Engine, weight_limit: int) -> dict[str, object]:
    symbols: list[dict[str, object]] = []
    for state in engine.symbols.values():
        spec = state.spec
        if spec.product != USDM:
            continue
        symbols.append(
            {
                "symbol": spec.symbol,
                "pair": spec.symbol,
                "contractType": "PERPETUAL",
                "deliveryDate": 4133404800000,
                "onboardDate": 1569398400000,
                "status": "TRADING",
                "maintMarginPercent": "2.5000",
                "requiredMarginPercent": "5.0000",
                "baseAsset": spec.base_asset,
                "quoteAsset": "USDT",
                "marginAsset": "USDT",
                "pricePrecision": spec.price_precision,
                "quantityPrecision": spec.qty_precision,
                "baseAssetPrecision": 8,
                "quotePrecision": 8,
                "underlyingType": "COIN",
                "underlyingSubType": [],
                "triggerProtect": "0.0500",
                "liquidationFee": "0.012500",
                "marketTakeBound": "0.05",
                "maxMoveOrderLimit": 10000,
                "filters": [
                    {
                        "filterType": "PRICE_FILTER",
                        "minPrice": format(spec.tick, "f"),
                        "maxPrice": "4529764",
                        "tickSize": format(spec.tick, "f"),
                    },
                    {
                        "filterType": "LOT_SIZE",
                        "minQty": format(spec.step, "f"),
                        "maxQty": "1000",
                        "stepSize": format(spec.step, "f"),
                    },
                    {
                        "filterType": "MARKET_LOT_SIZE",
                        "minQty": format(spec.step, "f"),
                        "maxQty": "120",
                        "stepSize": format(spec.step, "f"),
                    },
                    {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                    {"filterType": "MIN_NOTIONAL", "notional": format(spec.min_notional, "f")},
                    {
                        "filterType": "PERCENT_PRICE",
                        "multiplierUp": "1.0500",
                        "multiplierDown": "0.9500",
                        "multiplierDecimal": "4",
                    },
                ],
                "orderTypes": ORDER_TYPES,
                "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
                "permissionSets": ["GRID", "COPY"],
            }
        )
    return {
        "timezone": "UTC",
        "serverTime": engine.clock.server_ms(),
        "futuresType": "U_MARGINED",
        "rateLimits": _rate_limits(weight_limit),
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": symbols,
    }
