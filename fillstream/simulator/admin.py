"""The ``/_sim`` admin API (not part of Binance; never rate limited or authenticated).

=========================  =====================================================================
``GET  /_sim/ledger``      ground truth (``?stable=1`` leaves out wall-clock times,
                           ``?market=usdm|coinm`` keeps one product's records)
``GET  /_sim/faults``      active faults
``POST /_sim/faults``      ``{"account", "kind", ...params}``: inject a fault
``DELETE /_sim/faults``    end every fault
``POST /_sim/burst``       ``{"account", "symbol", "count", "rate"}``: simple fills, fast
``POST /_sim/trade``       ``{"account", "symbol", "side", "qty", "type", "price", ...}``
                           (a spot account: ``timeInForce`` instead of the futures fields)
``POST /_sim/spot/balance`` ``{"account", "asset", "delta"}``: a deposit (withdrawal if < 0)
``POST /_sim/mark``        ``{"symbol", "price"}``: move the mark (triggers, liquidations)
``POST /_sim/close``       ``{"account", "symbol", "kind": liquidation|adl|settlement|delivery}``
``POST /_sim/funding``     ``{"account"?}``: charge funding now
``POST /_sim/clock``       ``{"advance_s"}``: jump the timer clock forward
``POST /_sim/pause``       stop the generator; ``/_sim/resume`` restarts it
``GET  /_sim/status``      counters: fills, events, rounds, connections, listenKeys
=========================  =====================================================================

Errors are ``{"error": "<message>"}`` with HTTP 400.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

if TYPE_CHECKING:
    from fillstream.simulator.server import Simulator

_Json = dict[str, Any]


class AdminApi:
    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self._decode = msgspec.json.Decoder(dict[str, Any])

    def routes(self) -> list[web.RouteDef]:
        w = self._wrap
        return [
            web.get("/_sim/ledger", self.ledger),
            web.get("/_sim/faults", w(self.list_faults)),
            web.post("/_sim/faults", w(self.add_fault)),
            web.delete("/_sim/faults", w(self.clear_faults)),
            web.post("/_sim/burst", w(self.burst)),
            web.post("/_sim/trade", w(self.trade)),
            web.post("/_sim/spot/balance", w(self.spot_balance)),
            web.post("/_sim/mark", w(self.mark)),
            web.post("/_sim/close", w(self.close)),
            web.post("/_sim/funding", w(self.funding)),
            web.post("/_sim/clock", w(self.clock)),
            web.post("/_sim/pause", w(self.pause)),
            web.post("/_sim/resume", w(self.resume)),
            web.get("/_sim/status", w(self.status)),
        ]

    def _wrap(
        self, handler: Callable[[_Json], Awaitable[object]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def endpoint(request: web.Request) -> web.Response:
            raw = await request.read()
            try:
                body: _Json = self._decode.decode(raw) if raw.strip() else {}
                result = await handler(body)
            except (ValueError, KeyError, TypeError, InvalidOperation, msgspec.DecodeError) as exc:
                return _json({"error": f"{type(exc).__name__}: {exc}"}, status=400)
            return _json(result)

        return endpoint

    async def ledger(self, request: web.Request) -> web.Response:
        query = request.rel_url.query
        stable = query.get("stable", "") in ("1", "true")
        try:
            body = self._sim.ground_truth_bytes(stable=stable, market=query.get("market"))
        except ValueError as exc:
            return _json({"error": f"ValueError: {exc}"}, status=400)
        return web.Response(body=body, content_type="application/json")

    async def list_faults(self, body: _Json) -> object:
        return {"faults": self._sim.faults()}

    async def add_fault(self, body: _Json) -> object:
        params = dict(body)
        account = params.pop("account", None)
        kind = params.pop("kind")
        return self._sim.inject(account, str(kind), **params)

    async def clear_faults(self, body: _Json) -> object:
        self._sim.clear_faults()
        return {"faults": []}

    async def burst(self, body: _Json) -> object:
        made = await self._sim.burst(
            body["account"], body["symbol"], int(body["count"]), float(body.get("rate", 0))
        )
        return {"fills": made}

    async def trade(self, body: _Json) -> object:
        if body["account"] in self._sim.spot_states:
            return await self._sim.spot_trade(
                body["account"],
                body["symbol"],
                body["side"],
                Decimal(str(body["qty"])),
                order_type=body.get("type", "MARKET"),
                price=Decimal(str(body["price"])) if body.get("price") is not None else None,
                time_in_force=body.get("timeInForce", "GTC"),
                client_order_id=body.get("clientOrderId"),
                parts=int(body.get("parts", 1)),
            )
        return await self._sim.trade(
            body["account"],
            body["symbol"],
            body["side"],
            Decimal(str(body["qty"])),
            order_type=body.get("type", "MARKET"),
            price=Decimal(str(body["price"])) if body.get("price") is not None else None,
            position_side=body.get("positionSide"),
            reduce_only=bool(body.get("reduceOnly", False)),
            client_order_id=body.get("clientOrderId"),
            parts=int(body.get("parts", 1)),
        )

    async def spot_balance(self, body: _Json) -> object:
        spot = self._sim.spot
        book = spot.engine.book(body["account"])
        spot.engine.balance_change(book, str(body["asset"]), Decimal(str(body["delta"])))
        held = book.asset(str(body["asset"]))
        return {"asset": body["asset"], "free": str(held.free), "locked": str(held.locked)}

    async def mark(self, body: _Json) -> object:
        self._sim.set_mark(body["symbol"], Decimal(str(body["price"])))
        state = self._sim.symbols[body["symbol"]]
        return {"symbol": body["symbol"], "mark": state.spec.fmt_price(state.mark)}

    async def close(self, body: _Json) -> object:
        closed = self._sim.force_close(
            body["account"], body["symbol"], body["kind"], body.get("positionSide", "")
        )
        return {"closed": closed}

    async def funding(self, body: _Json) -> object:
        return {"events": self._sim.funding(body.get("account"))}

    async def clock(self, body: _Json) -> object:
        self._sim.clock.advance(float(body["advance_s"]))
        return {"sim_s": self._sim.clock.sim_s()}

    async def pause(self, body: _Json) -> object:
        self._sim.pause()
        return {"paused": True}

    async def resume(self, body: _Json) -> object:
        self._sim.resume()
        return {"paused": False}

    async def status(self, body: _Json) -> object:
        sim = self._sim
        return {
            "fills_generated": sim.fills_generated,
            "events_emitted": sim.hub.events_emitted,
            "rounds": sim.generator.rounds,
            "connections": len(sim.hub.connections),
            "rest": {
                **sim.limiter.stats(),
                "requests": sim.rest.ctx.requests,
                "by_route": dict(sim.rest.ctx.by_route),
            },
            "ws": {"accepted": sim.ws.accepted, "refused": sim.ws.refused},
            "spot": {
                "rounds": sim.spot.generator.rounds,
                "ws_api": {
                    "accepted": sim.spot.ws_api.accepted,
                    "requests": sim.spot.ws_api.requests,
                    "connections": len(sim.spot.ws_api.sessions),
                },
                "rest": {**sim.spot.limiter.stats(), "requests": sim.spot.rest.ctx.requests},
            },
            "accounts": {
                name: {
                    "fills_generated": s.fills_generated,
                    "market": s.market,
                    "listen_key_active": sim.keys.active(name, s.market) is not None,
                    "live_sockets": sim.hub.live_subscriptions(name),
                }
                for name, s in sim.states.items()
            }
            | {
                name: {
                    "fills_generated": s.fills_generated,
                    "market": s.market,
                    "subscriptions": len(sim.hub.subscriptions(name)),
                    "live_sockets": sim.hub.live_subscriptions(name),
                }
                for name, s in sim.spot_states.items()
            },
        }


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(body), status=status, content_type="application/json"
    )
