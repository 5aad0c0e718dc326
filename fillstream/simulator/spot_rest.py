"""The spot REST API (``/api/v3``): its routes and weights, its own weight pool, and signatures.

Spot has its own ``REQUEST_WEIGHT`` pool per IP (6,000/min by default), shared with the WS API;
every answer carries ``X-MBX-USED-WEIGHT-1M``. Checks run in the futures API's order (ban and
weight, injected ``rest_error``, API key, timestamp/recvWindow, signature, the endpoint). The
signature must cover the exact bytes sent, still percent-encoded (the 2026-01-15 rule: a client
that signs the decoded values of a parameter that needs encoding gets ``-1022``); HMAC
signatures are hex, RSA and Ed25519 ones base64 (percent-encoded in the query string).
"""

from __future__ import annotations

from urllib.parse import unquote

from fillstream.simulator.accounts import strip_signature
from fillstream.simulator.engine import Engine
from fillstream.simulator.market import SymbolSpec
from fillstream.simulator.params import Params
from fillstream.simulator.rest import RestApi, RestContext, Route, Security
from fillstream.simulator.spot_keys import SpotKey
from fillstream.simulator.spot_market import f8
from fillstream.simulator.spot_queries import SpotQueries
from fillstream.simulator.spot_trading import SpotTrading
from fillstream.simulator.state import AccountState

_ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT",
                "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"]  # fmt: skip
_STP = ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"]


class SpotRestApi(RestApi):
    """``/api/v3``: the spot endpoints, on the spot weight pool."""

    def __init__(
        self,
        ctx: RestContext,
        *,
        queries: SpotQueries,
        trading: SpotTrading,
        keys: dict[str, SpotKey],
    ) -> None:
        super().__init__(ctx)
        self._queries = queries
        self._spot_trading = trading
        self._keys = keys  # by account name

    def _table(self) -> list[Route]:
        q = self._queries
        t = self._spot_trading
        v3 = "/api/v3"
        return [
            ("GET", f"{v3}/ping", 1, Security.NONE, lambda a, p, e: {}),
            ("GET", f"{v3}/time", 1, Security.NONE, self._time),
            ("GET", f"{v3}/exchangeInfo", 20, Security.NONE, self._spot_exchange_info),
            ("GET", f"{v3}/myTrades", lambda p: 5 if p.get("orderId") else 20, Security.SIGNED,
             q.my_trades),
            ("GET", f"{v3}/allOrders", 20, Security.SIGNED, q.all_orders),
            ("GET", f"{v3}/order", 4, Security.SIGNED, q.order),
            ("GET", f"{v3}/openOrders", lambda p: 6 if p.get("symbol") else 80, Security.SIGNED,
             q.open_orders),
            ("GET", f"{v3}/account", 20, Security.SIGNED, q.account),
            ("GET", f"{v3}/account/commission", 20, Security.SIGNED, q.commission),
            ("POST", f"{v3}/order", 0, Security.SIGNED, t.place_order),
            ("DELETE", f"{v3}/order", 0, Security.SIGNED, t.cancel_order),
        ]  # fmt: skip

    def _signature_ok(self, acct: AccountState, raw_query: str, raw_body: str) -> bool:
        query, sig_q = strip_signature(raw_query)
        body, sig_b = strip_signature(raw_body)
        given = sig_b or sig_q
        key = self._keys.get(acct.name)
        if not given or key is None:
            return False
        return key.valid(query + body, unquote(given))

    def _spot_exchange_info(
        self, acct: AccountState | None, params: Params, engine: Engine
    ) -> object:
        return spot_exchange_info(self._queries, self.ctx.limiter.limit)


def spot_exchange_info(queries: SpotQueries, weight_limit: int) -> dict[str, object]:
    """``GET /api/v3/exchangeInfo``: the spot symbols with their filters and the rate limits."""
    engine = queries.engine
    symbols = []
    for state in engine.symbols.values():
        spec = state.spec
        symbols.append(
            {
                "symbol": spec.symbol,
                "status": "TRADING",
                "baseAsset": spec.base_asset,
                "baseAssetPrecision": 8,
                "quoteAsset": spec.quote_asset,
                "quotePrecision": 8,
                "quoteAssetPrecision": 8,
                "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8,
                "orderTypes": _ORDER_TYPES,
                "icebergAllowed": True,
                "ocoAllowed": True,
                "otoAllowed": True,
                "quoteOrderQtyMarketAllowed": True,
                "allowTrailingStop": True,
                "cancelReplaceAllowed": True,
                "amendAllowed": True,
                "pegInstructionsAllowed": False,
                "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False,
                "filters": _filters(spec),
                "permissions": [],
                "permissionSets": [["SPOT"]],
                "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                "allowedSelfTradePreventionModes": _STP,
            }
        )
    return {
        "timezone": "UTC",
        "serverTime": engine.clock.server_ms(),
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": weight_limit,
            },
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 160000},
            {
                "rateLimitType": "RAW_REQUESTS",
                "interval": "MINUTE",
                "intervalNum": 5,
                "limit": 300000,
            },
        ],
        "exchangeFilters": [],
        "symbols": symbols,
    }


def _filters(spec: SymbolSpec) -> list[dict[str, object]]:
    tick, step = f8(spec.tick), f8(spec.step)
    return [
        {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00000000",
         "tickSize": tick},
        {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000.00000000", "stepSize": step},
        {"filterType": "NOTIONAL", "minNotional": f8(spec.min_notional), "applyMinToMarket": True,
         "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "100.00000000",
         "stepSize": "0.00000000"},
        {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
    ]  # fmt: skip
