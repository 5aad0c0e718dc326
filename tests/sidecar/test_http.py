"""The HTTP endpoints' own behaviour: content types, status codes, the disabled reconcile route.

The endpoints against the real service are exercised in ``test_run_process.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest

from fillstream.sidecar.http import HttpServer, LoopLagMonitor, Readiness
from fillstream.sidecar.secrets import Secret

TOKEN = "reconcile-token-0123456789abcdef"


class _View:
    """A service view with fixed answers (implements ``ServiceView``)."""

    def __init__(self, ready: bool) -> None:
        self.ready = ready
        self.triggered: list[str] = []

    def alive(self) -> bool:
        return True

    async def readiness(self) -> Readiness:
        return Readiness(ready=self.ready, checks={"postgres": "ok", "nats": "down"})

    async def status(self) -> Mapping[str, Any]:
        return {"accounts": {"alpha": {"state": "streaming"}}}

    async def trigger_reconcile(self, account: str) -> Mapping[str, Any]:
        if account != "alpha":
            raise KeyError(account)
        self.triggered.append(account)
        return {"account": account, "triggered": True}


async def test_endpoints() -> None:
    view = _View(ready=False)
    server = HttpServer(view, host="127.0.0.1", port=0, enable_reconcile=True)
    url = await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/metrics") as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("text/plain")
                assert "python_info" in await r.text() or "process_" in await r.text()
            async with http.get(f"{url}/healthz") as r:
                assert r.status == 200
                assert (await r.json())["ok"] is True
            async with http.get(f"{url}/readyz") as r:
                assert r.status == 503
                assert (await r.json())["checks"]["nats"] == "down"
            view.ready = True
            async with http.get(f"{url}/readyz") as r:
                assert r.status == 200
            async with http.get(f"{url}/status") as r:
                assert (await r.json())["accounts"]["alpha"]["state"] == "streaming"
            async with http.post(f"{url}/reconcile?account=alpha") as r:
                assert r.status == 202
            async with http.post(f"{url}/reconcile?account=zeta") as r:
                assert r.status == 404
            async with http.post(f"{url}/reconcile") as r:
                assert r.status == 400
        assert view.triggered == ["alpha"]
    finally:
        await server.aclose()


async def test_reconcile_endpoint_is_off_unless_enabled() -> None:
    view = _View(ready=True)
    server = HttpServer(view, host="127.0.0.1", port=0)
    url = await server.start()
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{url}/reconcile?account=alpha") as r,
        ):
            assert r.status == 404
            assert "disabled" in (await r.json())["error"]
        assert view.triggered == []
    finally:
        await server.aclose()


async def test_reconcile_endpoint_needs_the_bearer_token_when_one_is_set(
    caplog: pytest.LogCaptureFixture,
) -> None:
    view = _View(ready=True)
    server = HttpServer(
        view, host="127.0.0.1", port=0, enable_reconcile=True, reconcile_token=Secret(TOKEN)
    )
    url = await server.start()
    refused = [
        {},
        {"Authorization": TOKEN},  # no scheme
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer wrong-token-guess-0123456789abcdef"},
    ]
    caplog.set_level(logging.INFO, logger="fillstream.sidecar.http")
    try:
        async with aiohttp.ClientSession() as http:
            for headers in refused:
                async with http.post(f"{url}/reconcile?account=alpha", headers=headers) as r:
                    assert r.status == 401, headers
                    assert r.headers["WWW-Authenticate"].startswith("Bearer")
                    assert TOKEN not in await r.text()
            assert view.triggered == []
            good = {"Authorization": f"Bearer {TOKEN}"}
            async with http.post(f"{url}/reconcile?account=alpha", headers=good) as r:
                assert r.status == 202
            async with http.post(
                f"{url}/reconcile?account=alpha", headers={"Authorization": f"bearer  {TOKEN} "}
            ) as r:
                assert r.status == 202  # the scheme is case-insensitive (RFC 7235)
            async with http.get(f"{url}/status") as r:  # the read-only endpoints stay open
                assert r.status == 200
        assert view.triggered == ["alpha", "alpha"]
    finally:
        await server.aclose()
    assert "POST /reconcile refused" in caplog.text
    assert TOKEN not in caplog.text
    assert TOKEN[:-1] not in caplog.text


async def test_loop_lag_monitor_sees_a_stalled_loop() -> None:
    monitor = LoopLagMonitor(interval_s=0.01)
    monitor.start()
    try:
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # a blocking call: the loop is stalled  # noqa: ASYNC251
        assert monitor.worst_lag_s() >= 0.25
    finally:
        await monitor.aclose()
