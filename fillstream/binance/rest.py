"""One account's REST access to Binance, over python-binance's ``AsyncClient``.

:class:`BinanceVenue` implements :class:`fillstream.binance.Venue`. It adds what python-binance
lacks for a long-running multi-account service:

- every call lands on the account's REST base URL (mainnet, demo/testnet, or an explicit URL
  such as the simulator's): the client's URL attributes are overridden once;
- every call first takes its weight from the shared :class:`WeightBudget` of that host, at the
  caller's :class:`RestPriority` (listenKey operations, clock syncs and the one exchangeInfo read
  per host at ``STREAM``), and feeds the ``X-MBX-USED-WEIGHT-1M``, 429 and 418 answers back into
  it; the wait in the budget's queue is not part of the request's timeout
  (``request_timeout_s`` covers the HTTP exchange alone);
- every failure becomes a :class:`VenueError` (status, Binance code, endpoint, ``Retry-After``);
  no answer at all (network error, timeout) is status 0;
- the clock offset is measured with the time endpoint at start and every
  ``time_sync_interval_s``; a ``-1021`` answer resyncs once and retries the call once.

Signed payloads are percent-encoded before signing (spot requires it since 2026-01-15, else
``-1022``): python-binance 1.0.37 signs the parameters sorted by name as ``k=v&…`` with the
``symbol`` value percent-encoded (``urllib.parse.quote``) and sends the query built the same
way, so the signature covers the bytes as sent. Every other parameter fillstream sends is an
integer or plain ASCII (``fromId``, ``startTime``, ``limit``, ``omitZeroBalances=true`` ...),
which encoding leaves unchanged; a UTF-8 symbol is tested against the simulator's check.

Every body is decoded once, by msgspec, straight into its row type (:mod:`.usdm.rows`):
python-binance signs the request and owns the session, but its JSON decoding (``json.loads``
into dicts, which msgspec then converted again) is bypassed by giving each client a response
handler that returns the body's bytes. A list endpoint answers :data:`Rows` (a row that does not
fit its type is a :class:`BadRow` in its place, so one malformed row never hides the others); a
one-row endpoint answers the row or a :class:`BadRow`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import time
import warnings
import weakref
from collections.abc import Mapping
from decimal import Decimal
from functools import partial
from types import SimpleNamespace
from typing import Any, Final, TypeVar

import aiohttp
import msgspec

from fillstream.binance import RestPriority, VenueError, current_rest_priority
from fillstream.binance.budget import Grant, WeightBudget, WeightBudgets, host_of
from fillstream.binance.coinm.rows import PositionRisk as CoinmPositionRisk
from fillstream.binance.coinm.rows import UserTrade as CoinmUserTrade
from fillstream.binance.coinm.sizes import ContractSizes
from fillstream.binance.endpoints import (
    ENDPOINTS,
    PREFIX,
    REST_URLS,
    TRADE_WINDOW_MS,
    Endpoint,
    default_rest_url,
)
from fillstream.binance.errors import TIMESTAMP_OUTSIDE_WINDOW
from fillstream.binance.metrics import REST_CLOCK_OFFSET, REST_REQUESTS
from fillstream.binance.spot.rows import AccountInfo, MyTrade, SpotOrder, SymbolInfo
from fillstream.binance.spot.symbols import SpotSymbols
from fillstream.binance.usdm.rows import (
    AlgoOrder,
    Income,
    OpenOrder,
    Order,
    PositionRisk,
    UserTrade,
)
from fillstream.binance.venue import BadRow, Rows
from fillstream.ledger import ConfigError, Market
from fillstream.ledger.units import pair_of

with warnings.catch_warnings():
    # python-binance 1.0.37 imports a name websockets deprecated; harmless, but our test suite
    # turns warnings into errors.
    warnings.simplefilter("ignore", DeprecationWarning)
    from binance import AsyncClient
    from binance.exceptions import BinanceAPIException, BinanceRequestException

__all__ = [
    "REST_URLS",
    "BadRow",
    "BinanceVenue",
    "Rows",
    "WeightBudget",
    "WeightBudgets",
    "default_rest_url",
]

log = logging.getLogger(__name__)

_BANNED_UNTIL = re.compile(r"banned until (\d{12,})")

T = TypeVar("T")

_OBJECT: Final = msgspec.json.Decoder(dict[str, Any])
# COIN-M contract sizes, one cache per host (its weight budget: shared by the host's accounts).
_SIZES: weakref.WeakKeyDictionary[WeightBudget, ContractSizes] = weakref.WeakKeyDictionary()
# Spot symbols (base and quote assets), one table per host likewise.
_SYMBOLS: weakref.WeakKeyDictionary[WeightBudget, SpotSymbols] = weakref.WeakKeyDictionary()
# The row types of the trade and order endpoints per product (the protocol's row types, or
# subclasses of them).
_TRADE_ROWS: Final[Mapping[Market, type[UserTrade]]] = {
    Market.USDM: UserTrade,
    Market.COINM: CoinmUserTrade,
    Market.SPOT: MyTrade,
}
_ORDER_ROWS: Final[Mapping[Market, type[Order]]] = {
    Market.USDM: Order,
    Market.COINM: Order,
    Market.SPOT: SpotOrder,
}
_ANY: Final = msgspec.json.Decoder()
_RAW_LIST: Final = msgspec.json.Decoder(list[msgspec.Raw])
_DECODERS: dict[type[Any], tuple[msgspec.json.Decoder[Any], msgspec.json.Decoder[Any]]] = {}


def _decoders(row_type: type[T]) -> tuple[msgspec.json.Decoder[list[T]], msgspec.json.Decoder[T]]:
    """(the whole-list decoder, the one-row decoder) of ``row_type``, built once."""
    found = _DECODERS.get(row_type)
    if found is None:
        found = _DECODERS[row_type] = (
            msgspec.json.Decoder(list[row_type]),  # type: ignore[valid-type]  # runtime type
            msgspec.json.Decoder(row_type),
        )
    return found


def decode_rows(body: bytes, row_type: type[T], endpoint: str) -> Rows[T]:
    """A JSON array body as ``row_type`` rows, decoded once; a row that does not fit is a
    :class:`BadRow` in its place. Raises :class:`VenueError` when the body is not a JSON array."""
    whole, one = _decoders(row_type)
    try:
        return list[T | BadRow](whole.decode(body))
    except msgspec.ValidationError:
        pass  # some row does not fit (or the body is no array): row by row
    except msgspec.DecodeError as exc:
        raise VenueError(200, None, f"invalid JSON: {exc}"[:200], endpoint=endpoint) from exc
    try:
        items = _RAW_LIST.decode(body)
    except msgspec.ValidationError as exc:  # (a DecodeError too: this clause goes first)
        reason = f"expected a JSON array: {exc}"[:200]
        raise VenueError(200, None, reason, endpoint=endpoint) from exc
    except msgspec.DecodeError as exc:  # a row did not fit before the JSON broke off
        raise VenueError(200, None, f"invalid JSON: {exc}"[:200], endpoint=endpoint) from exc
    rows: Rows[T] = []
    for item in items:
        try:
            rows.append(one.decode(item))
        except msgspec.ValidationError as exc:
            rows.append(BadRow(_ANY.decode(item), str(exc)))
    return rows


def decode_row(body: bytes, row_type: type[T], endpoint: str) -> T | BadRow:
    """A JSON object body as one ``row_type`` row, or a :class:`BadRow` when it does not fit."""
    try:
        return _decoders(row_type)[1].decode(body)
    except msgspec.ValidationError as exc:
        return BadRow(_any(body, endpoint), str(exc))
    except msgspec.DecodeError as exc:
        raise VenueError(200, None, f"invalid JSON: {exc}"[:200], endpoint=endpoint) from exc


def _object(body: bytes, endpoint: str) -> dict[str, Any]:
    """A JSON object body (an empty body is ``{}``); :class:`VenueError` otherwise."""
    if not body.strip():
        return {}
    try:
        return _OBJECT.decode(body)
    except msgspec.MsgspecError as exc:
        raise VenueError(
            200, None, f"expected a JSON object: {exc}"[:200], endpoint=endpoint
        ) from exc


def _any(body: bytes, endpoint: str) -> Any:
    try:
        return _ANY.decode(body)
    except msgspec.DecodeError as exc:
        raise VenueError(200, None, f"invalid JSON: {exc}"[:200], endpoint=endpoint) from exc


async def _body(response: aiohttp.ClientResponse) -> bytes:
    """python-binance's response handler, without its JSON decoding: a non-2xx answer raises
    what python-binance raises (``BinanceAPIException``), a 2xx answer is its bytes."""
    if not 200 <= response.status < 300:
        raise BinanceAPIException(response, response.status, await response.text())
    return await response.read()


class _Exchange:
    """What aiohttp saw of one request: filled by the trace hook, read by the caller."""

    __slots__ = ("headers", "status")

    def __init__(self) -> None:
        self.status = 0
        self.headers: Mapping[str, str] = {}


# The request in progress in this task. aiohttp runs trace hooks inside the calling task, so the
# response headers reach the right caller even when many calls share one client concurrently
# (python-binance's own ``client.response`` is overwritten by whichever call finished last).
_CURRENT: contextvars.ContextVar[_Exchange | None] = contextvars.ContextVar(
    "fillstream_venue_exchange", default=None
)


async def _on_request_end(
    _session: aiohttp.ClientSession, _ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
) -> None:
    exchange = _CURRENT.get()
    if exchange is not None:
        exchange.status = params.response.status
        exchange.headers = dict(params.response.headers)


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _retry_after(headers: Mapping[str, str], message: str) -> float | None:
    value = headers.get("Retry-After")
    if value is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
    match = _BANNED_UNTIL.search(message)
    if match:
        return max(0.0, int(match.group(1)) / 1000 - time.time())
    return None


class BinanceVenue:
    """One account's REST client; implements :class:`fillstream.binance.Venue`.

    Build with :meth:`create`, close with :meth:`aclose` (idempotent). The API key and secret live
    only inside python-binance's client and never appear in ``repr``, logs or metrics.
    """

    def __init__(
        self,
        *,
        account: str,
        market: Market,
        client: Any,
        rest_url: str,
        budget: WeightBudget,
        recv_window_ms: int,
        time_sync_interval_s: float,
        max_wait_s: float | None,
    ) -> None:
        self.account = account
        self.market = market
        self.rest_url = rest_url
        self.budget = budget
        self.recv_window_ms = recv_window_ms
        self.time_sync_interval_s = time_sync_interval_s
        self.max_wait_s = max_wait_s
        self._client = client
        self._endpoints = ENDPOINTS[market]
        self._prefix = PREFIX[market]
        self._synced_at = 0.0
        self._sync_lock = asyncio.Lock()
        self._closed = False
        self._sizes = _SIZES.setdefault(budget, ContractSizes()) if market is Market.COINM else None
        self._symbols = (
            _SYMBOLS.setdefault(budget, SpotSymbols()) if market is Market.SPOT else None
        )

    def __repr__(self) -> str:
        return (
            f"BinanceVenue(account={self.account!r}, market={self.market}, url={self.rest_url!r})"
        )

    @classmethod
    async def create(
        cls,
        *,
        account: str,
        market: Market = Market.USDM,
        api_key: str,
        api_secret: str | None,
        private_key: str | None = None,
        rest_url: str | None = None,
        endpoints: str = "mainnet",
        budget: WeightBudgets,
        recv_window_ms: int = 5000,
        request_timeout_s: float = 10.0,
        time_sync_interval_s: float = 300.0,
        max_wait_s: float | None = 90.0,
        sync_time: bool = True,
        fetch_limits: bool = True,
    ) -> BinanceVenue:
        """Build the client, point it at ``rest_url`` (or the ``endpoints`` preset), measure the
        clock offset, and, unless the host's limit is configured, read it from exchangeInfo.

        An HMAC key signs with ``api_secret``; an RSA or Ed25519 key with ``private_key``, an
        unencrypted PEM (python-binance tells the two apart by its length: a PKCS#8 Ed25519 PEM
        is 118 characters, an RSA one far longer), and ``api_secret`` is then None.

        ``max_wait_s`` bounds how long one call waits out a 429 pause or 418 ban of the host
        (None: unbounded); beyond it the call raises a local 429/418 :class:`VenueError` without
        sending anything. Waiting for weight is never an error.
        Raises :class:`VenueError` when the venue cannot be reached for the time sync.
        """
        if not 0 < recv_window_ms <= 60000:
            raise ConfigError(f"recv_window_ms must be in (0, 60000], got {recv_window_ms}")
        base = (rest_url or default_rest_url(market, endpoints)).rstrip("/")
        host_budget = budget.for_url(base, market=market)
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(_on_request_end)
        client = AsyncClient(
            api_key,
            api_secret,
            private_key=private_key,
            session_params={"trace_configs": [trace]},
        )
        prefix = PREFIX[market]
        # python-binance builds every URL from these attributes (+ "/v1/path" etc.); overriding
        # all of them, testnet/demo variants included, keeps every call on our base URL.
        for attr in ("FUTURES_URL", "FUTURES_TESTNET_URL", "FUTURES_DEMO_URL"):
            setattr(client, attr, f"{base}/fapi")
        for attr in ("FUTURES_COIN_URL", "FUTURES_COIN_TESTNET_URL", "FUTURES_COIN_DEMO_URL"):
            setattr(client, attr, f"{base}/dapi")
        for attr in ("API_URL", "API_TESTNET_URL", "API_DEMO_URL"):
            setattr(client, attr, f"{base}/api")
        client.REQUEST_RECVWINDOW = recv_window_ms
        client.REQUEST_TIMEOUT = request_timeout_s
        client._handle_response = _body  # the body is decoded once, here, by msgspec
        venue = cls(
            account=account,
            market=market,
            client=client,
            rest_url=base,
            budget=host_budget,
            recv_window_ms=recv_window_ms,
            time_sync_interval_s=time_sync_interval_s,
            max_wait_s=max_wait_s,
        )
        log.debug("venue %s/%s on %s (%s)", account, market, base, prefix)
        try:
            if sync_time:
                await venue.sync_time()
            if fetch_limits and not host_budget.limit_configured:
                async with host_budget.limits_lock:
                    if not host_budget.limits_loaded:
                        await venue._load_limits()  # a failure keeps the default: tried once
                        host_budget.limits_loaded = True
            if venue._sizes is not None and venue._sizes.never_read:
                await venue._sizes.refresh(venue._exchange_info)  # COIN-M: once per host
        except BaseException:
            await venue.aclose()
            raise
        return venue

    async def aclose(self) -> None:
        """Close the HTTP session. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._client.close_connection()

    # -- clock ---------------------------------------------------------------------------------

    @property
    def clock_offset_ms(self) -> int:
        """Venue time minus local time, as last measured."""
        return int(self._client.timestamp_offset)

    def now_ms(self) -> int:
        """The venue's clock, estimated locally (no request)."""
        return int(time.time() * 1000) + self.clock_offset_ms

    async def sync_time(self) -> int:
        """Measure the clock offset with the time endpoint (weight 1); returns it in ms."""
        async with self._sync_lock:
            before = time.time()
            # At STREAM priority: weight 1, and every signed call (and a starting account)
            # waits on it.
            body = await self._call("time", {}, priority=RestPriority.STREAM, retry_clock=False)
            after = time.time()
            server_ms = _server_time(body)
            offset = server_ms - int((before + after) / 2 * 1000)
            self._client.timestamp_offset = offset
            self._synced_at = after
            REST_CLOCK_OFFSET.labels(self.account, self.market).set(offset)
            return offset

    async def _exchange_info(self, priority: RestPriority = RestPriority.STREAM) -> bytes:
        return await self._call("exchangeInfo", {}, priority=priority)

    async def _read_exchange_info(self) -> bytes | None:
        """exchangeInfo for the rate limits; on COIN-M the same read fills the contract sizes."""
        if self._sizes is not None and (body := await self._sizes.refresh(self._exchange_info)):
            return body
        try:
            body = await self._exchange_info()
            if self._symbols is not None:
                self._symbols.feed(body)  # spot: the same read fills the symbol table
            return body
        except VenueError as exc:
            log.warning(
                "exchangeInfo on %s failed (%s); keeping limit %d",
                self.rest_url,
                exc,
                self.budget.limit,
            )
            return None

    async def _load_limits(self) -> None:
        info = await self._read_exchange_info()
        if info is None:
            return
        try:
            rules = _object(info, "exchangeInfo").get("rateLimits", ())
        except VenueError as exc:
            log.warning(
                "exchangeInfo on %s: %s; keeping limit %d", self.rest_url, exc, self.budget.limit
            )
            return
        for rule in rules if isinstance(rules, list) else ():
            if isinstance(rule, dict) and (
                rule.get("rateLimitType") == "REQUEST_WEIGHT"
                and rule.get("interval") == "MINUTE"
                and int(rule.get("intervalNum", 1)) == 1
            ):
                self.budget.set_limit(int(rule["limit"]))

    # -- the Venue protocol --------------------------------------------------------------------

    def contract_size(self, symbol: str) -> Decimal | None:
        if self._sizes is None:
            return None
        return self._sizes.lookup(symbol, self._exchange_info)

    async def contract_size_of(self, symbol: str) -> Decimal | None:
        if self._sizes is None:
            return None
        return await self._sizes.size(symbol, partial(self._exchange_info, RestPriority.HISTORY))

    async def server_time_ms(self) -> int:
        return _server_time(await self._call("time", {}))

    async def create_listen_key(self) -> str:
        self._require_futures("listenKey")
        body = await self._call("listenKey.create", {}, priority=RestPriority.STREAM)
        key = _object(body, "listenKey.create").get("listenKey")
        if not isinstance(key, str) or not key:
            raise VenueError(200, None, "no listenKey in the answer", endpoint="listenKey.create")
        return key

    async def keepalive_listen_key(self) -> str:
        self._require_futures("listenKey")
        body = await self._call("listenKey.keepalive", {}, priority=RestPriority.STREAM)
        key = _object(body, "listenKey.keepalive").get("listenKey", "")
        return key if isinstance(key, str) else ""

    async def close_listen_key(self) -> None:
        self._require_futures("listenKey")
        await self._call("listenKey.close", {}, priority=RestPriority.STREAM)

    async def user_trades(
        self,
        symbol: str,
        *,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        order_id: int | None = None,
        limit: int = 1000,
    ) -> Rows[UserTrade]:
        """``userTrades`` (``myTrades`` on spot: :class:`MyTrade` rows, weight 20, 5 with
        ``order_id``). Raises ``ValueError`` for a window the venue refuses (spot: > 24 h)."""
        span = TRADE_WINDOW_MS[self.market]
        if start_ms is not None and end_ms is not None and not 0 <= end_ms - start_ms < span:
            raise ValueError(f"userTrades window {start_ms}..{end_ms} exceeds {span} ms")
        params = {
            "symbol": symbol,
            "orderId": order_id,
            "fromId": from_id,
            "startTime": start_ms,
            "endTime": end_ms,
        }
        return await self._rows("userTrades", {**params, "limit": limit}, _TRADE_ROWS[self.market])

    async def all_orders(
        self,
        symbol: str,
        *,
        order_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 1000,
    ) -> Rows[Order]:
        params = {"symbol": symbol, "orderId": order_id, "startTime": start_ms, "endTime": end_ms}
        return await self._rows("allOrders", {**params, "limit": limit}, _ORDER_ROWS[self.market])

    async def order(self, symbol: str, order_id: int) -> Order | BadRow:
        """``GET order`` (spot: :class:`SpotOrder`, weight 4; an archived order is a
        ``VenueError`` whose ``is_archived`` is set: final, do not ask again)."""
        body = await self._call("order", {"symbol": symbol, "orderId": order_id})
        return decode_row(body, _ORDER_ROWS[self.market], "order")

    async def open_orders(self, symbol: str | None = None) -> Rows[OpenOrder]:
        return await self._rows("openOrders", {"symbol": symbol}, OpenOrder)

    async def position_risk(self, symbol: str | None = None) -> Rows[PositionRisk]:
        self._require_futures("positionRisk")
        if self.market is Market.COINM:
            return await self._coinm_position_risk(symbol)
        return await self._rows("positionRisk", {"symbol": symbol}, PositionRisk)

    async def _coinm_position_risk(self, symbol: str | None) -> Rows[PositionRisk]:
        """``/dapi/v1/positionRisk`` takes ``pair`` (not ``symbol``) and lists every symbol,
        flat ones too: narrowed to ``symbol`` and to open positions, as fapi's v3 answers."""
        pair = None if symbol is None else pair_of(symbol)
        rows: Rows[PositionRisk] = await self._rows(
            "positionRisk", {"pair": pair}, CoinmPositionRisk
        )
        return [r for r in rows if isinstance(r, BadRow) or _open_on(r, symbol)]

    async def income(
        self,
        *,
        symbol: str | None = None,
        income_type: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 1000,
    ) -> Rows[Income]:
        self._require_futures("income")
        params = {
            "symbol": symbol,
            "incomeType": income_type,
            "startTime": start_ms,
            "endTime": end_ms,
            "limit": limit,
        }
        return await self._rows("income", params, Income)

    async def algo_order(self, algo_id: int) -> AlgoOrder | BadRow:
        self._require_algo_service("algoOrder")
        body = await self._call("algoOrder", {"algoId": algo_id})
        return decode_row(body, AlgoOrder, "algoOrder")

    async def open_algo_orders(self, symbol: str | None = None) -> Rows[AlgoOrder]:
        if self.market not in ALGO_SERVICE_MARKETS:
            return []
        return await self._rows("openAlgoOrders", {"symbol": symbol}, AlgoOrder)

    async def all_algo_orders(
        self,
        symbol: str,
        *,
        algo_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 1000,
    ) -> Rows[AlgoOrder]:
        if self.market not in ALGO_SERVICE_MARKETS:
            return []
        params = {"symbol": symbol, "algoId": algo_id, "startTime": start_ms, "endTime": end_ms}
        return await self._rows("allAlgoOrders", {**params, "limit": limit}, AlgoOrder)

    async def account_info(self) -> AccountInfo | BadRow:
        """Spot ``GET /api/v3/account`` (weight 20) without its zero balances."""
        self._require_spot("account_info")
        body = await self._call("account", {"omitZeroBalances": "true"})
        return decode_row(body, AccountInfo, "account")

    async def spot_symbols(self) -> Mapping[str, SymbolInfo]:
        """Spot: every symbol of exchangeInfo with its base and quote asset, read once per host
        and at most hourly after (:mod:`.spot.symbols`)."""
        if self._symbols is None:
            raise ConfigError("spot_symbols: spot venues only")
        return await self._symbols.get(partial(self._exchange_info, RestPriority.HISTORY))

    async def account_permissions(self) -> Mapping[str, bool]:
        """``read`` (the signed account call worked) plus the venue's ``can*`` flags."""
        body = _object(await self._call("account", {}), "account")
        perms = {"read": True}
        for name in ("canTrade", "canDeposit", "canWithdraw"):
            if isinstance(body.get(name), bool):
                perms[name] = body[name]
        return perms

    # -- plumbing ------------------------------------------------------------------------------

    def _require_futures(self, what: str) -> None:
        if self.market is Market.SPOT:
            raise ConfigError(
                f"{what}: not on spot (no REST listenKey since 2026-02-20, no positions, "
                "no income or funding)"
            )

    def _require_spot(self, what: str) -> None:
        if self.market is not Market.SPOT:
            raise ConfigError(f"{what}: spot venues only")

    def _require_algo_service(self, what: str) -> None:
        if self.market not in ALGO_SERVICE_MARKETS:
            raise ConfigError(f"{what}: the Algo Service exists on USD-M and COIN-M futures only")

    async def _rows(self, name: str, params: dict[str, Any], row_type: type[T]) -> Rows[T]:
        return decode_rows(await self._call(name, params), row_type, name)

    async def _call(
        self,
        name: str,
        params: dict[str, Any],
        *,
        priority: RestPriority | None = None,
        retry_clock: bool = True,
    ) -> bytes:
        endpoint = self._endpoints.get(name)
        if endpoint is None:
            raise ConfigError(f"{name} is not available on {self.market}")
        if self._closed:
            raise VenueError(0, None, "venue closed", endpoint=name)
        data = {k: v for k, v in params.items() if v is not None}
        if endpoint.signed and time.time() - self._synced_at > self.time_sync_interval_s:
            await self.sync_time()
        try:
            return await self._send(endpoint, data, priority)
        except VenueError as exc:
            if not (retry_clock and endpoint.signed and exc.code == TIMESTAMP_OUTSIDE_WINDOW):
                raise
            log.info("venue %s: %s; resyncing the clock once", self.account, exc)
            await self.sync_time()
            return await self._send(endpoint, data, priority)

    async def _send(
        self, endpoint: Endpoint, data: dict[str, Any], priority: RestPriority | None
    ) -> bytes:
        weight = endpoint.weight_of(data)
        if priority is None:
            priority = current_rest_priority()
        grant = await self.budget.acquire(weight, priority, max_wait_s=self.max_wait_s)
        exchange = _Exchange()
        token = _CURRENT.set(exchange)
        try:
            body = await self._request(endpoint, dict(data))
        except BinanceAPIException as exc:
            error = self._error(endpoint, exc.status_code, exc.code, str(exc.message), exchange)
            self._settle(grant, endpoint, exchange, exc.status_code, error.retry_after_s)
            raise error from exc
        except BinanceRequestException as exc:
            self._settle(grant, endpoint, exchange, exchange.status, None)
            raise VenueError(
                exchange.status, None, str(exc.message)[:200], endpoint=endpoint.name
            ) from exc
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            self._settle(grant, endpoint, exchange, exchange.status, None)
            raise VenueError(
                exchange.status, None, f"{type(exc).__name__}: {exc}"[:200], endpoint=endpoint.name
            ) from exc
        except BaseException:
            self._settle(grant, endpoint, exchange, exchange.status, None)
            raise
        finally:
            _CURRENT.reset(token)
        self._settle(grant, endpoint, exchange, exchange.status or 200, None)
        return body

    async def _request(self, endpoint: Endpoint, data: dict[str, Any]) -> bytes:
        client = self._client
        if self.market is Market.SPOT:
            body = await client._request_api(
                endpoint.method, endpoint.path, endpoint.signed, f"v{endpoint.version}", data=data
            )
        else:
            send = (
                client._request_futures_api
                if self.market is Market.USDM
                else client._request_futures_coin_api
            )
            body = await send(
                endpoint.method, endpoint.path, endpoint.signed, endpoint.version, data=data
            )
        return bytes(body)  # what _body returned

    def _error(
        self, endpoint: Endpoint, status: int, code: Any, message: str, exchange: _Exchange
    ) -> VenueError:
        code_int = code if isinstance(code, int) and code != 0 else None
        return VenueError(
            int(status),
            code_int,
            message[:200],
            endpoint=endpoint.name,
            retry_after_s=_retry_after(exchange.headers, message),
        )

    def _settle(
        self,
        grant: Grant,
        endpoint: Endpoint,
        exchange: _Exchange,
        status: int,
        retry_after_s: float | None,
    ) -> None:
        used = _header_int(exchange.headers, "X-MBX-USED-WEIGHT-1M")
        self.budget.settle(grant, used_weight=used, status=status, retry_after_s=retry_after_s)
        REST_REQUESTS.labels(self.account, self.market, endpoint.name, str(status)).inc()
        if status in (418, 429):
            log.warning(
                "venue %s: %s answered %d; REST to %s paused %s s",
                self.account,
                endpoint.name,
                status,
                self.budget.host,
                f"{self.budget.paused_for()[1]:.1f}",
            )


ALGO_SERVICE_MARKETS: Final = frozenset({Market.USDM, Market.COINM})
"""Conditional orders live in the Algo Service on USDⓈ-M and, since the 2026 CM-UM integration,
on COIN-M (``/dapi/v1/algoOrder``; ``/dapi/v1/order`` answers -4120: binance-wave2.md §B.2)."""


def _open_on(row: PositionRisk, symbol: str | None) -> bool:
    """A COIN-M positionRisk row of ``symbol`` (None: any) with a position open."""
    if symbol is not None and row.symbol != symbol:
        return False
    return row.positionAmt.strip("+-0.") != ""  # "0", "0.000", "-0": flat; anything else:
    # open, or not a number, which the caller's parse reports


def _server_time(body: bytes) -> int:
    value = _object(body, "time").get("serverTime")
    if not isinstance(value, int) or isinstance(value, bool):
        raise VenueError(200, None, "no serverTime in the answer", endpoint="time")
    return value


def rest_host(rest_url: str) -> str:
    """The key of the shared budget for ``rest_url`` (re-exported for the sidecar)."""
    return host_of(rest_url)
