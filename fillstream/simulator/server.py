"""The simulator: one aiohttp server with Binance's REST and WebSocket paths plus ``/_sim`` admin.

Both futures products in one process: USDⓈ-M on ``/fapi`` (user stream
``sim.ws_url + "/private/ws/" + listen_key``) and COIN-M on ``/dapi`` (user stream
``sim.ws_url + "/ws/" + listen_key``, dstream's form). Pointing python-binance's ``AsyncClient``
at it (every call builds its URL from ``FUTURES_URL`` / ``FUTURES_COIN_URL`` + ``/v1``, ``/v2``
or ``/v3``)::

    client = AsyncClient(api_key, api_secret)      # not AsyncClient.create(): that pings spot
    client.FUTURES_URL = sim.rest_url + "/fapi"
    client.FUTURES_COIN_URL = sim.rest_url + "/dapi"
    client.FUTURES_DATA_URL = sim.rest_url + "/futures/data"   # unused by us; keeps it local
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from decimal import Decimal
from typing import Any

import msgspec
from aiohttp import web

from fillstream.simulator.accounts import SimAccount, make_account
from fillstream.simulator.admin import AdminApi
from fillstream.simulator.algos import AlgoService
from fillstream.simulator.clock import SimClock
from fillstream.simulator.config import SimConfig
from fillstream.simulator.engine import Engine
from fillstream.simulator.faultcontrol import FaultControl
from fillstream.simulator.funding import Funding
from fillstream.simulator.generator import Generator
from fillstream.simulator.hub import Hub
from fillstream.simulator.listenkeys import ListenKeys
from fillstream.simulator.market import COINM, SPOT, USDM, SymbolState, spec_for
from fillstream.simulator.ratelimit import WeightLimiter
from fillstream.simulator.rest import RestApi, RestContext
from fillstream.simulator.risk import Risk
from fillstream.simulator.spot import SpotVenue, make_spot_account
from fillstream.simulator.state import AccountState
from fillstream.simulator.trading import Trading
from fillstream.simulator.truth import ground_truth
from fillstream.simulator.ws import WsEndpoint


class Simulator:
    """A Binance USDⓈ-M stand-in. ``await start()``, use its URLs, ``await aclose()``."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config = config or SimConfig()
        seed = config.seed
        self.clock = SimClock(config.clock_speed)
        self.accounts: list[SimAccount] = [
            make_account(
                seed, name, hedge_mode=name in config.hedge_accounts, market=config.market(name)
            )
            for name in config.accounts
        ]
        self.states: dict[str, AccountState] = {a.name: AccountState(a) for a in self.accounts}
        self._by_key = {a.api_key: self.states[a.name] for a in self.accounts}
        self.spot_accounts: list[SimAccount] = [
            make_spot_account(seed, name, config.key_type(name)) for name in config.spot_accounts
        ]
        self.spot_states = {a.name: AccountState(a) for a in self.spot_accounts}
        self.symbols: dict[str, SymbolState] = {
            s: SymbolState(spec_for(s), i, random.Random(f"{seed}:symbol:{s}"))
            for i, s in enumerate(config.all_symbols)
        }
        self.hub = Hub(self.clock, {**self.states, **self.spot_states}, seed)
        self.engine = Engine(self.clock, self.symbols, self.states, self.hub)
        self.algos = AlgoService(
            self.engine, random.Random(f"{seed}:algos"), coinm_updates=config.coinm_algo_update
        )
        self.risk = Risk(self.engine)
        self.trading = Trading(self.engine, self.algos)
        self.generator = Generator(
            self.engine,
            algos=self.algos,
            risk=self.risk,
            seed=seed,
            # Only the products some account trades move on their own (the others stay put
            # unless set_mark() moves them): no COIN-M walks for a USDⓈ-M-only venue.
            symbols=[
                s
                for s in self.symbols.values()
                if s.spec.product in {a.market for a in self.accounts}
            ],
            accounts=list(self.states.values()),
            on_mark=self.on_mark,
        )
        self.keys = ListenKeys(self.clock)
        self.limiter = WeightLimiter(self.clock, config.weight_limit_1m)
        self.funding_service = Funding(
            self.engine,
            random.Random(f"{seed}:funding"),
            random.Random(f"{seed}:funding:coinm"),
        )
        self.fault_control = FaultControl(
            hub=self.hub,
            keys=self.keys,
            states={**self.states, **self.spot_states},
            clock=self.clock,
        )
        self.ws = WsEndpoint(
            self.hub,
            self.keys,
            self.clock,
            ping_interval_s=config.ping_interval_s,
            pong_timeout_s=config.pong_timeout_s,
            refused=self.fault_control.ws_refused,
        )
        self.rest = RestApi(
            RestContext(
                self.engine,
                accounts_by_key=self._by_key,
                limiter=self.limiter,
                rest_errors=self.fault_control.rest_errors,
                listen_key_created=self._key_created,
                listen_key_kept=self._key_kept,
                listen_key_deleted=self._key_deleted,
                trading=self.trading,
            )
        )
        self.spot = SpotVenue(
            config,
            self.clock,
            hub=self.hub,
            states=self.spot_states,
            rest_context=lambda by_key, limiter: RestContext(
                self.engine,
                accounts_by_key=by_key,
                limiter=limiter,
                rest_errors=self.fault_control.rest_errors,
                listen_key_created=self._key_created,
                listen_key_kept=self._key_kept,
                listen_key_deleted=self._key_deleted,
                trading=self.trading,
            ),
            fault_control=self.fault_control,
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
        app.add_routes(self.spot.routes())
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
            self.fault_control.apply_config(fault)
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
        await self.hub.aclose()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def ready_info(self) -> dict[str, object]:
        """The one JSON object ``fillstream sim`` prints (design.md §5).

        Each account also gives its product (``market``) and where to reach it: the REST base
        of that product (``…/fapi`` or ``…/dapi``), the listenKey path and the user-stream URL
        with ``{listenKey}`` to fill in.
        """
        return {
            "rest_url": self.rest_url,
            "ws_url": self.ws_url,
            "admin_url": self.admin_url,
            "accounts": [
                {
                    "name": a.name,
                    "api_key": a.api_key,
                    "api_secret": a.api_secret,
                    **self.urls(a.market),
                }
                for a in self.accounts
            ]
            + [self.spot_record(a) for a in self.spot_accounts],
        }

    def spot_record(self, account: SimAccount) -> dict[str, object]:
        """A spot account's ready-file entry: its key (the private key PEM for RSA/Ed25519
        keys, the secret for HMAC ones) and where the spot REST and WS API are."""
        record: dict[str, object] = {
            "name": account.name,
            "api_key": account.api_key,
            "api_secret": account.api_secret,
            "key_type": account.key_type,
            "market": SPOT,
            "rest_base": f"{self.rest_url}/api",
            "ws_api_url": f"{self.ws_url}/ws-api/v3",
        }
        if account.private_key_pem:
            record["private_key_pem"] = account.private_key_pem
        return record

    def urls(self, market: str) -> dict[str, str]:
        """Where a client of ``market`` (``usdm``/``coinm``) finds this simulator."""
        coinm = market == COINM
        return {
            "market": market,
            "rest_base": f"{self.rest_url}/{'dapi' if coinm else 'fapi'}",
            "listen_key_path": "/dapi/v1/listenKey" if coinm else "/fapi/v1/listenKey",
            "stream_url": f"{self.ws_url}{'/ws' if coinm else '/private/ws'}/{{listenKey}}",
        }

    def account(self, name: str) -> SimAccount:
        """Credentials of ``name`` (futures or spot); ``ValueError`` if there is no such account."""
        spot = self.spot_states.get(name)
        return spot.account if spot is not None else self._state(name).account

    # -- background loops --------------------------------------------------------------------

    async def _generate(self) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        per_s = config.rate * (len(self.accounts) + len(self.spot_accounts))
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
                    produced += max(self._round(), 0.5)
                    if produced > due:
                        break
                await asyncio.sleep(0)
            else:
                await asyncio.sleep(min((produced - due) / per_s, 0.05))
        self.finished.set()

    async def _timers(self) -> None:
        clock = self.clock
        config = self.config
        tick = min(
            config.ping_interval_s, config.pong_timeout_s, config.ws_api_ping_interval_s, 3600.0
        )
        tick /= config.clock_speed
        tick = min(max(tick / 20, 0.005), 0.1)
        while True:
            for key in self.keys.expired():
                owner = self.keys.owner(key)
                if owner is not None:
                    self.hub.key_expired(key, owner)
            self.ws.tick()
            self.spot.ws_api.tick()
            self.hub.flush_reorders(0.5)
            if clock.sim_s() >= self._next_funding_sim:
                self._next_funding_sim += config.funding_interval_s
                self.funding()
            await asyncio.sleep(tick)

    # -- listenKeys ----------------------------------------------------------------------------

    def _key_created(self, acct: AccountState, product: str = USDM) -> str:
        return self.keys.create(acct.name, product)

    def _key_kept(self, acct: AccountState, product: str = USDM) -> str | None:
        return self.keys.keepalive(acct.name, product)

    def _key_deleted(self, acct: AccountState, product: str = USDM) -> None:
        key = self.keys.delete(acct.name, product)
        if key is not None:
            self.hub.key_deleted(key, acct.name)

    # -- activity ------------------------------------------------------------------------------

    def on_mark(self, symbol: str, mark: Decimal) -> None:
        """Everything a mark-price move sets off: resting limits, algo triggers, liquidations."""
        self.trading.on_mark(symbol, mark)
        self.algos.on_mark(symbol, mark)
        self.risk.on_mark(symbol, mark)

    def mark(self, symbol: str) -> Decimal:
        """The symbol's current mark price."""
        return self.engine.symbol(symbol).mark

    def set_mark(self, symbol: str, price: Decimal | str) -> None:
        """Move a symbol's mark price (tests: trigger a TP/SL or a liquidation on purpose)."""
        state = self.engine.symbol(symbol)
        state.mark = state.spec.price(Decimal(price))
        self.on_mark(symbol, state.mark)

    def step(self, rounds: int = 1) -> int:
        """Run generator rounds now, synchronously; returns the fills they produced."""
        return sum(self._round() for _ in range(rounds))

    def _round(self) -> int:
        """One round of every generator (the spot one only when there are spot accounts)."""
        made = self.generator.round()
        if self.spot_accounts:
            made += self.spot.generator.round()
        return made

    def pause(self) -> None:
        """Stop the generator (manual activity still works)."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def fills_generated(self) -> int:
        return sum(s.fills_generated for s in self.states.values()) + sum(
            s.fills_generated for s in self.spot_states.values()
        )

    def fills_generated_by(self, account: str) -> int:
        spot = self.spot_states.get(account)
        return spot.fills_generated if spot is not None else self._state(account).fills_generated

    async def spot_trade(
        self,
        account: str,
        symbol: str,
        side: str,
        qty: Decimal | str,
        *,
        order_type: str = "MARKET",
        price: Decimal | str | None = None,
        time_in_force: str = "GTC",
        client_order_id: str | None = None,
        parts: int = 1,
    ) -> dict[str, object]:
        """Place a spot MARKET or LIMIT order for ``account`` now; returns its order row."""
        order, _ = self.spot.trading.submit(
            account,
            symbol,
            side,
            Decimal(qty),
            order_type=order_type,
            price=Decimal(price) if price is not None else None,
            tif=time_in_force,
            client_order_id=client_order_id,
            parts=parts,
        )
        return order.rest_row()

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
        reduce_only: bool = False,
        callback_rate: Decimal | str | None = None,
        activate_price: Decimal | str | None = None,
        position_side: str | None = None,
        client_algo_id: str | None = None,
    ) -> dict[str, object]:
        """Place a conditional order (TP/SL/trailing); returns its ``algoOrder`` REST row.

        ``reduce_only`` defaults to false, as on Binance: a triggered order that is not
        reduce-only trades its whole quantity (it may open or flip a position) and does not
        expire when the position closes.
        """
        placed = self.algos.place(
            self._state(account),
            symbol,
            order_type,
            side,
            position_side=position_side,
            trigger_price=Decimal(trigger_price) if trigger_price is not None else Decimal(0),
            quantity=Decimal(quantity) if quantity is not None else Decimal(0),
            close_position=close_position,
            reduce_only=reduce_only,
            callback_rate=Decimal(callback_rate) if callback_rate is not None else None,
            activate_price=Decimal(activate_price) if activate_price is not None else None,
            client_algo_id=client_algo_id,
        )
        return placed.rest_row()

    def force_close(self, account: str, symbol: str, kind: str, position_side: str = "") -> bool:
        """Close a position the exchange's way: ``liquidation``, ``adl``, ``settlement`` or
        (COIN-M dated contracts) ``delivery``."""
        acct = self._state(account)
        sides = [position_side] if position_side else ["BOTH", "LONG", "SHORT"]
        risk = self.risk
        action = {
            "liquidation": risk.liquidate,
            "adl": risk.adl,
            "settlement": risk.settle,
            "delivery": risk.deliver,
        }.get(kind)
        if action is None:
            raise ValueError(f"unknown forced close {kind!r}")
        for ps in sides:
            pos = acct.positions.get((symbol, ps))
            if pos is not None and pos.qty != 0:
                action(acct, pos)
                return True
        return False

    def funding(self, account: str | None = None) -> int:
        """Charge funding now (also every ``funding_interval_s`` sim seconds); returns events."""
        targets = [self._state(account)] if account else list(self.states.values())
        return self.funding_service.charge(targets)

    async def burst(self, account: str, symbol: str, count: int, rate: float = 0.0) -> int:
        """``count`` simple fills (alternating open/close round trips), at most ``rate``/s.

        ``rate`` 0 means as fast as possible. Returns the fills made. Each fill is four events
        (ORDER_TRADE_UPDATE NEW, TRADE_LITE, ORDER_TRADE_UPDATE TRADE, ACCOUNT_UPDATE).
        """
        return await self.trading.burst(self._state(account), symbol, count, rate)

    # -- faults --------------------------------------------------------------------------------

    def inject(self, account: str | None, kind: str, **params: object) -> dict[str, object]:
        """Inject a fault (kinds and parameters: :mod:`fillstream.simulator.faults`).

        ``account`` may be None for ``rest_error``, ``refuse_ws`` and ``clock_skew``.
        Returns a short description of what it did. Raises ``ValueError`` for bad requests.
        """
        return self.fault_control.inject(account, kind, params)

    def faults(self) -> list[dict[str, object]]:
        """Active faults, as ``GET /_sim/faults`` lists them."""
        return self.fault_control.active()

    def clear_faults(self) -> None:
        """End every fault (sockets already cut stay cut)."""
        self.fault_control.clear()

    # -- ground truth --------------------------------------------------------------------------

    def ground_truth(self, *, stable: bool = False, market: str | None = None) -> dict[str, Any]:
        """Every fill, order and close produced so far (same JSON as ``GET /_sim/ledger``).

        ``market`` ``usdm``/``coinm`` keeps the futures accounts with only that product's
        records (its symbols); ``spot`` keeps only the spot accounts.
        """
        if market not in (None, USDM, COINM, SPOT):
            raise ValueError(f"unknown market {market!r}: usdm, coinm or spot")
        truth: dict[str, Any] = {"accounts": {}}
        if market != SPOT:
            truth = ground_truth(
                self.states.values(), stable=stable, symbols=self._symbols_of(market)
            )
        if market in (None, SPOT):
            truth["accounts"].update(self.spot.truth(stable=stable))
        return truth

    def ground_truth_bytes(self, *, stable: bool = False, market: str | None = None) -> bytes:
        return msgspec.json.encode(self.ground_truth(stable=stable, market=market))

    def _symbols_of(self, market: str | None) -> frozenset[str] | None:
        """The futures symbols of ``market``, to filter the ground truth by (None: no filter)."""
        if market is None:
            return None
        return frozenset(name for name, s in self.symbols.items() if s.spec.product == market)

    def _state(self, account: str) -> AccountState:
        state = self.states.get(account)
        if state is None:
            raise ValueError(f"unknown account {account!r}")
        return state
