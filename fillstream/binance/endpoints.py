"""The REST endpoints the venue wrapper calls, per market: path, API version, weight.

Weights per binance-facts.md §4 (fapi), §5.4 (spot) and §6 (dapi); ``heavy_weight`` is the
weight of the all-symbol form (no ``symbol`` parameter). Also the built-in REST base URLs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

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
    "userTrades": Endpoint("userTrades", "get", "userTrades", 1, 20),
    "allOrders": Endpoint("allOrders", "get", "allOrders", 1, 20),
    "positionRisk": Endpoint("positionRisk", "get", "positionRisk", 1, 1),
    "income": Endpoint("income", "get", "income", 1, 20),
    "account": Endpoint("account", "get", "account", 1, 5),
}
SPOT_ENDPOINTS: Final[Mapping[str, Endpoint]] = {
    e.name: e
    for e in (
        Endpoint("time", "get", "time", 3, 1, signed=False),
        Endpoint("exchangeInfo", "get", "exchangeInfo", 3, 20, signed=False),
        Endpoint("userTrades", "get", "myTrades", 3, 20),
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
