"""The simulator: one aiohttp server with Binance's REST and WebSocket paths plus ``/_sim`` admin.

Pointing python-binance's ``AsyncClient`` at it (every USDⓈ-M call our service makes builds its
URL from ``FUTURES_URL`` + ``/v1``, ``/v2`` or ``/v3``)::

    client = AsyncClient(api_key, api_secret)      # not AsyncClient.create(): that pings spot
    client.FUTURES_URL = sim.rest_url + "/fapi"
    client.FUTURES_DATA_URL = sim.rest_url + "/futures/data"   # unused by us; keeps it local

and the user stream at ``sim.ws_url + "/private/ws/" + listen_key``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from decimal import Decimal
from typing import Any

from aiohttp import web

from fillstream.simulator.accounts import SimAccount, make_account
from fillstream.simulator.admin import AdminApi
from fillstream.simulator.algos import AlgoService
from fillstream.simulator.clock import SimClock
from fillstream.simulator.config import FaultSpec, SimConfig
from fillstream.simulator.engine import Engine
from fillstream.simulator.faults import GLOBAL_KINDS, RestError, validate
from fillstream.simulator.generator import Generator
from fillstream.simulator.hub import Hub
from fillstream.simulator.listenkeys import ListenKeys
from fillstream.simulator.market import SymbolState, spec_for
from fillstream.simulator.ratelimit import WeightLimiter
from fillstream.simulator.rest import RestApi, RestContext
from fillstream.simulator.risk import Risk
from fillstream.simulator.state import AccountState
from fillstream.simulator.trading import Trading
from fillstream.simulator.truth import ground_truth, ground_truth_bytes
from fillstream.simulator.ws import WsEndpoint


class Simulator:
    """A Binance USDⓈ-M stand-in. ``await start()``, use its URLs, ``await aclose()``."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config = config or SimConfig()
        seed = config.seed
        self.clock = SimClock(config.clock_speed)
        self.accounts: list[SimAccount] = [
            make_account(seed, name, hedge_mode=name in config.hedge_accounts)
            for name in config.accounts
        ]
        self.states: dict[str, AccountState] = {a.name: AccountState(a) for a in self.accounts}
        self._by_key = {a.api_key: self.states[a.name] for a in self.accounts}
        self.symbols: dict[str, SymbolState] = {
            s: SymbolState(spec_for(s), i, random.Random(f"{seed}:symbol:{s}"))
            for i, s in enumerate(config.symbols)
        }
        self.hub = Hub(self.clock, self.states, seed)
        self.engine = Engine(self.clock, self.symbols, self.states, self.hub)
        self.algos = AlgoService(self.engine, random.Random(f"{seed}:algos"))
        self.risk = Risk(self.engine)
        self.trading = Trading(self.engine, self.algos)
        self.generator = Generator(
            self.engine,
            algos=self.algos,
            risk=self.risk,
            seed=seed,
            symbols=list(self.symbols.values()),
            accounts=list(self.states.values()),
            on_mark=self.on_mark,
        )
        self.keys = ListenKeys(self.clock)
        self.limiter = WeightLimiter(self.clock, config.weight_limit_1m)
        self.rest_errors: list[RestError] = []
        self._refuse_until: dict[str | None, float] = {}
        self._funding_rng = random.Random(f"{seed}:funding")
        self.ws = WsEndpoint(
            self.hub,
            self.keys,
            self.clock,
            ping_interval_s=config.ping_interval_s,
            pong_timeout_s=config.pong_timeout_s,
            refused=self._ws_refused,
        )
        self.rest = RestApi(
            RestContext(
                self.engine,
                accounts_by_key=self._by_key,
                limiter=self.limiter,
                rest_errors=self.rest_errors,
                listen_key_created=self._key_created,
                listen_key_kept=self._key_kept,
                listen_key_deleted=self._key_deleted,
                trading=self.trading,
            )
        )
        self.admin = AdminApi(self)
        self.rest_url = ""
        self.ws_url = ""
        self.admin_url = ""
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._running = asyncio.Event()
        self._running.set()
        self._closed = False
        self._next_funding_sim = config.funding_interval_s
        self.finished = asyncio.Event()  # set when the generator stops (max_rounds/duration)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind, serve, and start the generator and timers. ``rest_url`` etc. are set after."""
        if self._runner is not None:
            return
        app = web.Application(client_max_size=1 << 20)
        app.add_routes(self.rest.routes())
        app.add_routes(self.ws.routes())
        app.add_routes(self.admin.routes())
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port, reuse_address=True)
        await site.start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.rest_url = f"http://{host}:{port}"
        self.ws_url = f"ws://{host}:{port}"
        self.admin_url = self.rest_url
        for fault in self.config.faults:
            self._apply_config_fault(fault)
        self._tasks.append(asyncio.ensure_future(self._timers()))
        if self.config.rate > 0:
            self._tasks.append(asyncio.ensure_future(self._generate()))
        else:
            self.finished.set()

    async def aclose(self) -> None:
        """Stop everything; idempotent."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.ws.aclose()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def ready_info(self) -> dict[str, object]:
        """The one JSON object ``fillstream sim`` prints (design.md §5)."""
        return {
            "rest_url": self.rest_url,
            "ws_url": self.ws_url,
            "admin_url": self.admin_url,
            "accounts": [
                {"name": a.name, "api_key": a.api_key, "api_secret": a.api_secret}
                for a in self.accounts
            ],
        }

    def account(self, name: str) -> SimAccount:
        return self.states[name].account if name in self.states else _unknown(name)

    # -- background loops --------------------------------------------------------------------

    async def _generate(self) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        per_s = config.rate * len(self.accounts)
        started = loop.time()
        origin = started
        produced = 0.0
        while True:
            if not self._running.is_set():
                await self._running.wait()
                origin = loop.time()
                produced = 0.0
            now = loop.time()
            if config.max_rounds is not None and self.generator.rounds >= config.max_rounds:
                break
            if config.duration_s is not None and now - started >= config.duration_s:
                break
            due = (now - origin) * per_s
            if due - produced > per_s:  # we fell behind by over a second: don't burst to catch up
                origin = now - produced / per_s
                due = produced
            if produced <= due:
                batch = 64
                if config.max_rounds is not None:
                    batch = min(batch, config.max_rounds - self.generator.rounds)
                for _ in range(batch):
                    produced += max(self.generator.round(), 0.5)
                    if produced > due:
                        break
                await asyncio.sleep(0)
            else:
                await asyncio.sleep(min((produced - due) / per_s, 0.05))
        self.finished.set()

    async def _timers(self) -> None:
        clock = self.clock
        config = self.config
        tick = min(config.ping_interval_s, config.pong_timeout_s, 3600.0) / config.clock_speed
        tick = min(max(tick / 20, 0.005), 0.1)
        while True:
            for key in self.keys.expired():
                owner = self.keys.owner(key)
                if owner is not None:
                    self.hub.key_expired(key, owner)
            self.ws.tick()
            self.hub.flush_reorders(0.5)
            if clock.sim_s() >= self._next_funding_sim:
                self._next_funding_sim += config.funding_interval_s
                self.funding()
            await asyncio.sleep(tick)

    # -- listenKeys ----------------------------------------------------------------------------

    def _key_created(self, acct: AccountState) -> str:
        return self.keys.create(acct.name)

    def _key_kept(self, acct: AccountState) -> str | None:
        return self.keys.keepalive(acct.name)

    def _key_deleted(self, acct: AccountState) -> None:
        key = self.keys.delete(acct.name)
        if key is not None:
            self.hub.key_deleted(key, acct.name)

    def _ws_refused(self, owners: list[str | None]) -> bool:
        now = self.clock.mono()
        if self._refuse_until.get(None, 0.0) > now:
            return True
        return any(self._refuse_until.get(o, 0.0) > now for o in owners if o is not None)

    # -- activity ------------------------------------------------------------------------------

    def on_mark(self, symbol: str, mark: Decimal) -> None:
        """Everything a mark-price move sets off: resting limits, algo triggers, liquidations."""
        self.trading.on_mark(symbol, mark)
        self.algos.on_mark(symbol, mark)
        self.risk.on_mark(symbol, mark)

    def set_mark(self, symbol: str, price: Decimal | str) -> None:
        """Move a symbol's mark price (tests: trigger a TP/SL or a liquidation on purpose)."""
        state = self.engine.symbol(symbol)
        state.mark = state.spec.price(Decimal(price))
        self.on_mark(symbol, state.mark)

    def step(self, rounds: int = 1) -> int:
        """Run generator rounds now, synchronously; returns the fills they produced."""
        return sum(self.generator.round() for _ in range(rounds))

    def pause(self) -> None:
        """Stop the generator (manual activity still works)."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def fills_generated(self) -> int:
        return sum(s.fills_generated for s in self.states.values())

    def fills_generated_by(self, account: str) -> int:
        return self._state(account).fills_generated

    async def trade(
        self,
        account: str,
        symbol: str,
        side: str,
        qty: Decimal | str,
        *,
        order_type: str = "MARKET",
        price: Decimal | str | None = None,
        position_side: str | None = None,
        reduce_only: bool = False,
        client_order_id: str | None = None,
        parts: int = 1,
    ) -> dict[str, object]:
        """Place a MARKET or LIMIT order for ``account`` now; returns its ``order`` REST row.

        Deterministic given the current marks. ``parts`` > 1 splits a taker fill over that many
        executions (a partially filled order).
        """
        order = self.trading.submit(
            self._state(account),
            symbol,
            side,
            Decimal(qty),
            order_type=order_type,
            price=Decimal(price) if price is not None else None,
            position_side=position_side,
            reduce_only=reduce_only,
            client_order_id=client_order_id,
            parts=parts,
        )
        return order.rest_row()

    async def algo(
        self,
        account: str,
        symbol: str,
        order_type: str,
        side: str,
        *,
        trigger_price: Decimal | str | None = None,
        quantity: Decimal | str | None = None,
        close_position: bool = False,
        callback_rate: Decimal | str | None = None,
        activate_price: Decimal | str | None = None,
        position_side: str | None = None,
        client_algo_id: str | None = None,
    ) -> dict[str, object]:
        """Place a conditional order (TP/SL/trailing); returns its ``algoOrder`` REST row."""
        placed = self.algos.place(
            self._state(account),
            symbol,
            order_type,
            side,
            position_side=position_side,
            trigger_price=Decimal(trigger_price) if trigger_price is not None else Decimal(0),
            quantity=Decimal(quantity) if quantity is not None else Decimal(0),
            close_position=close_position,
            callback_rate=Decimal(callback_rate) if callback_rate is not None else None,
            activate_price=Decimal(activate_price) if activate_price is not None else None,
            client_algo_id=client_algo_id,
        )
        return placed.rest_row()

    def force_close(self, account: str, symbol: str, kind: str, position_side: str = "") -> bool:
        """Close a position the exchange's way: ``liquidation``, ``adl`` or ``settlement``."""
        acct = self._state(account)
        sides = [position_side] if position_side else ["BOTH", "LONG", "SHORT"]
        action = {"liquidation": self.risk.liquidate, "adl": self.risk.adl}.get(
            kind, self.risk.settle if kind == "settlement" else None
        )
        if action is None:
            raise ValueError(f"unknown forced close {kind!r}")
        for ps in sides:
            pos = acct.positions.get((symbol, ps))
            if pos is not None and pos.qty != 0:
                action(acct, pos)
                return True
        return False

    def funding(self, account: str | None = None) -> int:
        """Charge funding now (every ``funding_interval_s`` sim seconds anyway)."""
        rates = {s: Decimal(self._funding_rng.randint(-30, 60)) / 1_000_000 for s in self.symbols}
        targets = [self._state(account)] if account else list(self.states.values())
        return sum(self.engine.funding(acct, rates) for acct in targets)

    async def burst(self, account: str, symbol: str, count: int, rate: float = 0.0) -> int:
        """``count`` simple fills (alternating open/close round trips), at most ``rate``/s.

        ``rate`` 0 means as fast as possible. Returns the fills made. Each fill is four events
        (ORDER_TRADE_UPDATE NEW, TRADE_LITE, ORDER_TRADE_UPDATE TRADE, ACCOUNT_UPDATE).
        """
        acct = self._state(account)
        sym = self.engine.symbol(symbol)
        qty = sym.spec.qty(Decimal(100) / sym.mark)
        opening, closing = ("BUY", "SELL")
        ps_open = "LONG" if acct.hedge else "BOTH"
        loop = asyncio.get_running_loop()
        started = loop.time()
        batch = 50 if rate <= 0 else max(1, min(200, int(rate / 200)))
        made = 0
        while made < count:
            for _ in range(min(batch, count - made)):
                side = opening if made % 2 == 0 else closing
                self.engine.market(acct, symbol, side, qty, position_side=ps_open)
                made += 1
            if rate > 0:
                ahead = made / rate - (loop.time() - started)
                await asyncio.sleep(max(ahead, 0))
            else:
                await asyncio.sleep(0)
        return made

    # -- faults --------------------------------------------------------------------------------

    def inject(self, account: str | None, kind: str, **params: object) -> dict[str, object]:
        """Inject a fault (kinds and parameters: :mod:`fillstream.simulator.faults`).

        ``account`` may be None for ``rest_error``, ``refuse_ws`` and ``clock_skew``.
        Returns a short description of what it did. Raises ``ValueError`` for bad requests.
        """
        p = validate(kind, params)
        if account is not None:
            self._state(account)
        elif kind not in GLOBAL_KINDS and kind not in ("rest_error", "refuse_ws"):
            raise ValueError(f"fault {kind!r} needs an account")
        return self._apply(account, kind, p)

    def _apply(self, account: str | None, kind: str, p: dict[str, object]) -> dict[str, object]:
        hub = self.hub
        done: dict[str, object] = {"account": account, "kind": kind}
        if kind == "clock_skew":
            self.clock.skew_ms = _int(p["ms"])
            return done
        if kind == "rest_error":
            status = _int(p["status"])
            retry = float(str(p.get("retry_after", 1.0)))
            code = p.get("code")
            err = RestError(account, status, _int(p.get("count", 1)), _opt_int(code), retry)
            self.rest_errors.append(err)
            return done
        if kind == "refuse_ws":
            self._refuse_until[account] = self.clock.mono() + float(str(p["seconds"]))
            return done
        assert account is not None
        faults = hub.faults[account]
        if kind == "drop":
            faults.drop += _int(p.get("count", 1))
        elif kind == "drop_rate":
            faults.drop_rate = float(str(p["p"]))
        elif kind == "duplicate":
            faults.duplicate += _int(p.get("count", 1))
        elif kind == "reorder":
            faults.reorder = max(_int(p.get("count", 2)), 2)
        elif kind == "disconnect":
            code = _opt_int(p.get("code"))
            if code is None:
                done["sockets"] = hub.disconnect(account)
            else:
                done["sockets"] = self.ws.cut(account, code, b"disconnect fault")
        elif kind == "silent":
            done["sockets"] = hub.silence(account, float(str(p["seconds"])))
        elif kind == "expire_listen_key":
            key = self.keys.expire_now(account)
            if key is not None:
                hub.key_expired(key, account)
            done["listen_key"] = key
        elif kind == "rest_lag":
            self.states[account].set_rest_lag(float(str(p["seconds"])))
        elif kind == "inject_frame":
            done["sockets"] = hub.inject_raw(account, str(p["raw"]))
        elif kind == "cut":
            done["sockets"] = self.ws.cut(account, 1001, b"24h connection limit")
        return done

    def _apply_config_fault(self, fault: FaultSpec) -> None:
        params = dict(fault.params)
        if fault.account is None and fault.kind not in ("clock_skew", "rest_error", "refuse_ws"):
            for name in self.states:
                self.inject(name, fault.kind, **params)
        else:
            self.inject(fault.account, fault.kind, **params)

    def faults(self) -> list[dict[str, object]]:
        """Active faults, as ``GET /_sim/faults`` lists them."""
        out: list[dict[str, object]] = []
        now = self.clock.mono()
        for name, faults in self.hub.faults.items():
            out.extend({"account": name, **f} for f in faults.describe())
        for name, acct in self.states.items():
            if acct.rest_lag_s > 0:
                out.append({"account": name, "kind": "rest_lag", "seconds": acct.rest_lag_s})
            silent = [c.silent_until - now for c in self.hub.account_connections(name)]
            if silent and max(silent) > 0:
                out.append({"account": name, "kind": "silent", "seconds": max(silent)})
        out.extend(e.describe() for e in self.rest_errors if e.remaining > 0)
        for account, until in self._refuse_until.items():
            if until > now:
                out.append({"account": account, "kind": "refuse_ws", "seconds": until - now})
        if self.clock.skew_ms:
            out.append({"account": None, "kind": "clock_skew", "ms": self.clock.skew_ms})
        return out

    def clear_faults(self) -> None:
        """End every fault (sockets already cut stay cut)."""
        for name, faults in self.hub.faults.items():
            faults.drop = faults.duplicate = 0
            faults.drop_rate = 0.0
            for frame in faults.flush():
                self.hub.deliver(name, frame)
        for acct in self.states.values():
            acct.set_rest_lag(0.0)
        for conn in self.hub.connections:
            conn.silent_until = 0.0
        self.rest_errors.clear()
        self._refuse_until.clear()
        self.clock.skew_ms = 0

    # -- ground truth --------------------------------------------------------------------------

    def ground_truth(self, *, stable: bool = False) -> dict[str, Any]:
        """Every fill, order and close produced so far (same JSON as ``GET /_sim/ledger``)."""
        return ground_truth(self.states.values(), stable=stable)

    def ground_truth_bytes(self, *, stable: bool = False) -> bytes:
        return ground_truth_bytes(self.states.values(), stable=stable)

    def _state(self, account: str) -> AccountState:
        state = self.states.get(account)
        if state is None:
            raise ValueError(f"unknown account {account!r}")
        return state


def _unknown(name: str) -> SimAccount:
    raise ValueError(f"unknown account {name!r}")


def _int(value: object) -> int:
    return int(str(value))


def _opt_int(value: object) -> int | None:
    return None if value is None else int(str(value))
