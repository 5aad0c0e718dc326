"""Where Binance is: the built-in REST and WebSocket base URLs per market and environment, the
user-stream URL forms, and the REST endpoints the venue wrapper calls (path, API version, weight).

Weights per binance-facts.md §4 (fapi), §5.4 (spot) and §6 (dapi); ``heavy_weight`` is the
weight of the all-symbol form (no ``symbol`` parameter).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import quote

from fillstream.ledger import ConfigError, Market

REST_URLS: Final[Mapping[tuple[Market, str], str]] = {
    (Market.USDM, "mainnet"): "https://fapi.binance.com",
    (Market.USDM, "testnet"): "https://demo-fapi.binance.com",
    (Market.USDM, "demo"): "https://demo-fapi.binance.com",
    (Market.COINM, "mainnet"): "https://dapi.binance.com",
    (Market.COINM, "testnet"): "https://testnet.binancefuture.com",
    (Market.COINM, "demo"): "https://demo-dapi.binance.com",
    (Market.SPOT, "mainnet"): "https://api.binance.com",
    (Market.SPOT, "testnet"): "https://testnet.binance.vision",
    (Market.SPOT, "demo"): "https://demo-api.binance.com",
}


WS_URLS: Final[Mapping[tuple[Market, str], str]] = {
    (Market.USDM, "mainnet"): "wss://fstream.binance.com",
    # binance-facts.md §1.3: which testnet host is canonical is unconfirmed; the SDK's one.
    (Market.USDM, "testnet"): "wss://fstream.binancefuture.com",
    (Market.USDM, "demo"): "wss://fstream.binancefuture.com",
    (Market.COINM, "mainnet"): "wss://dstream.binance.com",
    (Market.COINM, "testnet"): "wss://dstream.binancefuture.com",
    (Market.COINM, "demo"): "wss://dstream.binancefuture.com",
    (Market.SPOT, "mainnet"): "wss://ws-api.binance.com:443/ws-api/v3",
    (Market.SPOT, "testnet"): "wss://ws-api.testnet.binance.vision/ws-api/v3",
    (Market.SPOT, "demo"): "wss://demo-ws-api.binance.com/ws-api/v3",
}
"""WebSocket bases per (market, endpoint set); ``custom`` gives its own. Futures user streams
append the routed path (:func:`user_stream_url`); spot's is the WS-API endpoint itself."""

UrlForm = Literal["path", "query", "stream"]


def user_stream_url(
    ws_url: str, form: UrlForm, ws_path: str, listen_key: str, events: tuple[str, ...]
) -> str:
    """A futures user-data URL for ``listen_key`` on base ``ws_url`` in the given form:
    ``path`` → ``<ws_url><ws_path>/<key>``;
    ``query`` → ``<ws_url><ws_path>?listenKey=<key>&events=…``;
    ``stream`` → ``<ws_url>/private/stream?listenKey=<key>&events=…`` (combined envelopes).
    """
    base = ws_url.rstrip("/")
    key = quote(listen_key, safe="")
    joined = "/".join(events)
    if form == "path":
        return f"{base}{ws_path}/{key}"
    if form == "stream":
        return f"{base}/private/stream?listenKey={key}&events={joined}"
    return f"{base}{ws_path}?listenKey={key}&events={joined}"


def default_rest_url(market: Market, endpoints: str) -> str:
    """The REST base URL of ``endpoints`` (mainnet, testnet, demo) for ``market``."""
    try:
        return REST_URLS[(market, endpoints)]
    except KeyError:
        raise ConfigError(f"no built-in REST URL for {market}/{endpoints}; set rest_url") from None


@dataclass(frozen=True)
class Endpoint:
    """One REST endpoint: its metric label, HTTP method, path, API version and weight."""

    name: str
    method: str
    path: str
    version: int
    weight: int
    signed: bool = True
    heavy_weight: int | None = None  # the weight without a symbol, when it differs
    light_weight: tuple[str, int] | None = None  # (parameter, the weight when it is sent)

    def weight_of(self, params: Mapping[str, object]) -> int:
        """The weight of a call with ``params`` (the ``None``-free parameters it sends)."""
        if self.light_weight is not None and self.light_weight[0] in params:
            return self.light_weight[1]
        if self.heavy_weight is not None and "symbol" not in params:
            return self.heavy_weight
        return self.weight


USDM_ENDPOINTS: Final[Mapping[str, Endpoint]] = {
    e.name: e
    for e in (
        Endpoint("time", "get", "time", 1, 1, signed=False),
        Endpoint("exchangeInfo", "get", "exchangeInfo", 1, 1, signed=False),
        Endpoint("listenKey.create", "post", "listenKey", 1, 1, signed=False),
        Endpoint("listenKey.keepalive", "put", "listenKey", 1, 1, signed=False),
        Endpoint("listenKey.close", "delete", "listenKey", 1, 1, signed=False),
        Endpoint("userTrades", "get", "userTrades", 1, 5),
        Endpoint("allOrders", "get", "allOrders", 1, 5),
        Endpoint("order", "get", "order", 1, 1),
        Endpoint("openOrders", "get", "openOrders", 1, 1, heavy_weight=40),
        Endpoint("positionRisk", "get", "positionRisk", 3, 5),
        Endpoint("income", "get", "income", 1, 30),
        Endpoint("algoOrder", "get", "algoOrder", 1, 1),
        Endpoint("openAlgoOrders", "get", "openAlgoOrders", 1, 1, heavy_weight=40),
        Endpoint("allAlgoOrders", "get", "allAlgoOrders", 1, 5),
        Endpoint("account", "get", "account", 2, 5),
    )
}
COINM_ENDPOINTS: Final[Mapping[str, Endpoint]] = {
    **USDM_ENDPOINTS,
    # binance-wave2.md §B.2/§B.4 (after the 2026 CM-UM integration): userTrades and allOrders
    # 5 flat (was 20/40), positionRisk v1 weight 1, income 20, account v1; the Algo Service
    # endpoints (COIN-M conditional orders since then) as on fapi.
    "positionRisk": Endpoint("positionRisk", "get", "positionRisk", 1, 1),
    "income": Endpoint("income", "get", "income", 1, 20),
    "account": Endpoint("account", "get", "account", 1, 5),
}
SPOT_ENDPOINTS: Final[Mapping[str, Endpoint]] = {
    e.name: e
    for e in (
        Endpoint("time", "get", "time", 3, 1, signed=False),
        Endpoint("exchangeInfo", "get", "exchangeInfo", 3, 20, signed=False),
        # binance-wave2.md §A.6: symbol mandatory; 5 with orderId; start..end at most 24 h.
        Endpoint("userTrades", "get", "myTrades", 3, 20, light_weight=("orderId", 5)),
        Endpoint("allOrders", "get", "allOrders", 3, 20),
        Endpoint("order", "get", "order", 3, 4),
        Endpoint("openOrders", "get", "openOrders", 3, 6, heavy_weight=80),
        Endpoint("account", "get", "account", 3, 20),
    )
}
ENDPOINTS: Final[Mapping[Market, Mapping[str, Endpoint]]] = {
    Market.USDM: USDM_ENDPOINTS,
    Market.COINM: COINM_ENDPOINTS,
    Market.SPOT: SPOT_ENDPOINTS,
}
PREFIX: Final[Mapping[Market, str]] = {
    Market.USDM: "fapi",
    Market.COINM: "dapi",
    Market.SPOT: "api",
}


SHARED_POOLS: Final[Mapping[str, str]] = {
    "dapi.binance.com": "fapi.binance.com",
    "demo-dapi.binance.com": "demo-fapi.binance.com",
    # Spot: REST and the WebSocket API count against one REQUEST_WEIGHT pool per IP
    # (binance-wave2.md §A.5), on every alternative REST host too.
    **{
        host: "api.binance.com"
        for host in (
            "api-gcp.binance.com",
            "api1.binance.com",
            "api2.binance.com",
            "api3.binance.com",
            "api4.binance.com",
            "ws-api.binance.com",
            "ws-api.binance.com:443",
            "ws-api.binance.com:9443",
        )
    },
    "ws-api.testnet.binance.vision": "testnet.binance.vision",
    "demo-ws-api.binance.com": "demo-api.binance.com",
}
"""Hosts that count against another host's weight pool. Since the 2026 CM-UM integration
USDⓈ-M and COIN-M share ONE request-weight pool per IP (2400/min, binance-wave2.md §B.2), so the
dapi hosts map to their fapi sibling and one budget serves both products (the testnet serves both
products on ``testnet.binancefuture.com`` already; a simulator serves both on one host). Spot's
WS-API hosts map to their REST host: a subscription's weight is charged where ``myTrades`` is."""

DEFAULT_WEIGHT_LIMITS: Final[Mapping[Market, int]] = {
    Market.USDM: 2400,
    Market.COINM: 2400,
    Market.SPOT: 6000,
}
"""REQUEST_WEIGHT per minute per IP, until exchangeInfo (or config) says otherwise."""

TRADE_WINDOW_MS: Final[Mapping[Market, int]] = {
    Market.USDM: 7 * 86_400_000,
    Market.COINM: 7 * 86_400_000,
    Market.SPOT: 86_400_000,
}
"""The longest ``startTime``..``endTime`` span the trade-list endpoint accepts (``userTrades``:
7 days; spot ``myTrades``: 24 hours), both ends inclusive: a window is at most this minus 1 ms."""

COINM_WS_PATH: Final = "/ws"
"""dstream's user-stream path (``wss://dstream.binance.com/ws/<listenKey>``): no ``/private``
routing is known for COIN-M (binance-wave2.md §B.1), so the ``path`` form on ``/ws`` is the
default; ``ws_url``/``stream.ws_path``/``stream.url_form`` override it."""
