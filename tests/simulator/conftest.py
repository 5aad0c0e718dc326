"""Helpers for the simulator tests: a started simulator, signed REST calls, a stream reader."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
import msgspec
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from fillstream.simulator import SimConfig, Simulator

SimFactory = Callable[..., Awaitable[Simulator]]


@pytest.fixture
async def make_sim() -> AsyncIterator[SimFactory]:
    """Start simulators with the given :class:`SimConfig` fields; all closed after the test."""
    started: list[Simulator] = []

    async def factory(**fields: Any) -> Simulator:
        fields.setdefault("rate", 0)
        sim = Simulator(SimConfig(**fields))
        await sim.start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        await sim.aclose()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def wait_until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class Rest:
    """Raw REST calls for one account, signed exactly like Binance clients sign them."""

    def __init__(self, http: aiohttp.ClientSession, sim: Simulator, account: str) -> None:
        self.http = http
        self.sim = sim
        acct = sim.account(account)
        self.key = acct.api_key
        self.secret = acct.api_secret

    def signed_query(self, params: dict[str, Any], *, offset_ms: int = 0) -> str:
        payload = {**params, "timestamp": int(time.time() * 1000) + offset_ms}
        query = urlencode(payload)
        signature = hmac.new(self.secret.encode(), query.encode(), hashlib.sha256).hexdigest()
        return f"{query}&signature={signature}"

    async def call(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        signed: bool = True,
        key: str | None = None,
        query: str | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        if query is None:
            query = self.signed_query(params or {}) if signed else urlencode(params or {})
        url = f"{self.sim.rest_url}{path}" + (f"?{query}" if query else "")
        headers = {"X-MBX-APIKEY": self.key if key is None else key}
        async with self.http.request(method, url, headers=headers) as resp:
            body = msgspec.json.decode(await resp.read())
            return resp.status, body, dict(resp.headers)

    async def ok(self, method: str, path: str, params: dict[str, Any] | None = None) -> Any:
        status, body, _ = await self.call(method, path, params)
        assert status == 200, body
        return body

    async def listen_key(self) -> str:
        status, body, _ = await self.call("POST", "/fapi/v1/listenKey", signed=False)
        assert status == 200, body
        return str(body["listenKey"])


class StreamReader:
    """Reads one WebSocket in the background; ``frames`` holds the raw texts received."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[str] = []
        self.events: list[dict[str, Any]] = []  # the frames that decode to JSON objects
        self.closed = False
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in self.ws:
                text = message if isinstance(message, str) else message.decode()
                self.frames.append(text)
                with contextlib.suppress(msgspec.DecodeError):
                    decoded = msgspec.json.decode(text)
                    if isinstance(decoded, dict):
                        self.events.append(decoded)
        self.closed = True

    @property
    def close_code(self) -> int | None:
        """1006 when the TCP connection was cut without a close frame."""
        return self.ws.close_code

    def fills(self) -> int:
        return len(fill_events(self.events))

    def of(self, etype: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("e") == etype]

    async def aclose(self) -> None:
        await self.ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@contextlib.asynccontextmanager
async def stream(url: str) -> AsyncIterator[StreamReader]:
    ws = await websockets.connect(url, max_size=None)
    reader = StreamReader(ws)
    try:
        yield reader
    finally:
        await reader.aclose()


def fill_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ORDER_TRADE_UPDATE events that are fills (binance-facts section 3)."""
    return [
        e["o"]
        for e in events
        if e.get("e") == "ORDER_TRADE_UPDATE"
        and e["o"]["x"] in ("TRADE", "CALCULATED")
        and e["o"]["t"] != 0
    ]
