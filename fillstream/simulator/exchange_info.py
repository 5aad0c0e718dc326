"""``GET /fapi/v1/exchangeInfo``: the configured symbols and the rate limits in force."""

from __future__ import annotations

from fillstream.simulator.engine import Engine

ORDER_TYPES = ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
               "TRAILING_STOP_MARKET"]  # fmt: skip


def exchange_info(engine: Engine, weight_limit: int) -> dict[str, object]:
    symbols: list[dict[str, object]] = []
    for state in engine.symbols.values():
        spec = state.spec
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
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": weight_limit,
            },
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
        ],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": symbols,
    }
