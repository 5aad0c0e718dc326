"""The venue wrapper: the shared REST weight budget (priorities, headroom, 429 pauses, 418 bans,
probing) over a fake clock, then :class:`BinanceVenue` end to end against the simulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from fillstream.binance import RestPriority, VenueError
from fillstream.binance.budget import WeightBudget, WeightBudgets, host_of
from fillstream.binance.rest import BinanceVenue, default_rest_url
from fillstream.binance.usdm.rows import AlgoOrder, Income, Order, PositionRisk, UserTrade
from fillstream.ledger import Market
from fillstream.simulator import SimConfig, Simulator


class FakeClock:
    def __init__(self, now: float = 1_000_040.0) -> None:  # 20 s into a minute
        self.now = now

    def __call__(self) -> float:
        return self.now


async def _until(predicate: object, budget: WeightBudget) -> None:
    for _ in range(200):
        budget.refresh()
        if callable(predicate) and predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


def _budget(clock: FakeClock, limit: int = 100) -> WeightBudget:
    return WeightBudget("h:1", limit=limit, headroom=0.2, background_share=0.75, clock=clock)


async def test_within_budget_goes_at_once_and_header_sets_used() -> None:
    clock = FakeClock()
    budget = _budget(clock)
    grant = await budget.acquire(5, RestPriority.NORMAL)
    assert budget.in_flight == 5
    budget.settle(grant, used_weight=17, status=200)
    assert budget.used == 17
    assert budget.in_flight == 0
    budget.settle(grant, used_weight=99, status=200)  # settling twice is a no-op
    assert budget.used == 17


async def test_urgent_jumps_ahead_of_background_and_background_keeps_a_reserve() -> None:
    clock = FakeClock()
    budget = _budget(clock)  # usable 80, background cap 60
    first = await budget.acquire(5, RestPriority.NORMAL)
    budget.settle(first, used_weight=58, status=200)
    order: list[str] = []

    async def take(name: str, priority: RestPriority, weight: int) -> None:
        grant = await budget.acquire(weight, priority)
        order.append(name)
        budget.settle(grant, used_weight=None, status=200)

    background = asyncio.create_task(take("background", RestPriority.BACKGROUND, 5))
    await asyncio.sleep(0)
    assert order == []  # 58 + 5 > 60: periodic polls leave the reserve alone
    urgent = asyncio.create_task(take("urgent", RestPriority.URGENT, 5))
    await _until(lambda: order == ["urgent"], budget)  # 58 + 5 <= 80
    clock.now += 60  # a new minute: the window resets (it was not busy, no probing)
    await _until(lambda: order == ["urgent", "background"], budget)
    await asyncio.gather(background, urgent)


async def test_429_pauses_everyone_then_probes_one_at_a_time() -> None:
    clock = FakeClock()
    budget = _budget(clock)
    grant = await budget.acquire(5, RestPriority.NORMAL)
    budget.settle(grant, used_weight=40, status=429, retry_after_s=7)
    assert budget.paused_for() == ("rate_limited", 7)
    with pytest.raises(VenueError) as refused:
        await budget.acquire(1, RestPriority.URGENT, max_wait_s=2)
    assert refused.value.status == 429
    assert refused.value.is_rate_limited
    assert refused.value.retry_after_s == pytest.approx(7)
    assert budget.in_flight == 0  # nothing was sent, nothing is held

    waiting = [asyncio.create_task(budget.acquire(1, RestPriority.NORMAL)) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(t.done() for t in waiting)
    clock.now += 7.5
    await _until(lambda: sum(t.done() for t in waiting) == 1, budget)
    assert budget.in_flight == 1  # the probe goes alone
    probe = next(t for t in waiting if t.done()).result()
    budget.settle(probe, used_weight=3, status=200)  # a fresh header: back to normal
    await _until(lambda: all(t.done() for t in waiting), budget)
    for task in waiting:
        budget.settle(task.result(), used_weight=None, status=200)


async def test_418_ban_blocks_all_rest_until_it_ends() -> None:
    clock = FakeClock()
    budget = _budget(clock)
    grant = await budget.acquire(1, RestPriority.URGENT)
    budget.settle(grant, used_weight=None, status=418, retry_after_s=None)
    reason, left = budget.paused_for()
    assert reason == "banned"
    assert left == pytest.approx(120)  # the shortest Binance ban when no Retry-After came
    with pytest.raises(VenueError) as refused:
        await budget.acquire(1, RestPriority.URGENT, max_wait_s=60)
    assert refused.value.status == 418
    assert refused.value.is_banned
    clock.now += 121
    grant = await budget.acquire(1, RestPriority.URGENT, max_wait_s=1)
    budget.settle(grant, used_weight=1, status=200)


async def test_cancelled_waiter_releases_nothing_it_did_not_hold() -> None:
    clock = FakeClock()
    budget = _budget(clock, limit=10)  # usable 8
    held = await budget.acquire(8, RestPriority.NORMAL)
    waiter = asyncio.create_task(budget.acquire(5, RestPriority.NORMAL))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    budget.settle(held, used_weight=None, status=200)
    assert budget.in_flight == 0


async def test_busy_minute_rollover_probes_before_trusting_the_reset() -> None:
    clock = FakeClock()
    budget = _budget(clock)
    grant = await budget.acquire(5, RestPriority.NORMAL)
    budget.settle(grant, used_weight=75, status=200)
    clock.now += 60
    first = await budget.acquire(1, RestPriority.NORMAL)
    second = asyncio.create_task(budget.acquire(1, RestPriority.NORMAL))
    await asyncio.sleep(0)
    assert not second.done()  # the venue may count a sliding minute: ask before bursting
    budget.settle(first, used_weight=4, status=200)
    await _until(second.done, budget)
    budget.settle(second.result(), used_weight=None, status=200)


async def test_waiting_for_weight_is_never_an_error_and_is_visible_per_priority() -> None:
    clock = FakeClock()
    budget = _budget(clock)  # usable 80
    held = await budget.acquire(5, RestPriority.HISTORY)
    budget.settle(held, used_weight=80, status=200)  # the minute is spent
    waiter = asyncio.create_task(budget.acquire(5, RestPriority.HISTORY, max_wait_s=1))
    await asyncio.sleep(0)
    clock.now += 30  # far past max_wait_s: still waiting, nothing raised, nothing sent
    budget.refresh()
    await asyncio.sleep(0)
    assert not waiter.done()
    assert budget.queued()[RestPriority.HISTORY] == (1, 5)
    gauge = REGISTRY.get_sample_value(
        "fillstream_rest_queued_weight", {"host": "h:1", "priority": "history"}
    )
    assert gauge == 5
    queued = budget.status()["queued"]
    assert isinstance(queued, dict)
    assert queued["history"]["oldest_wait_s"] == pytest.approx(30)
    clock.now += 60
    await _until(waiter.done, budget)
    budget.settle(waiter.result(), used_weight=5, status=200)
    assert budget.queued()[RestPriority.HISTORY] == (0, 0)


async def test_each_priority_leaves_room_for_the_ones_before_it() -> None:
    clock = FakeClock()
    budget = _budget(clock)  # usable 80: stream 80, gap 76, history 68, periodic 60
    first = await budget.acquire(1, RestPriority.STREAM)
    budget.settle(first, used_weight=66, status=200)
    order: list[str] = []

    async def take(priority: RestPriority) -> None:
        grant = await budget.acquire(5, priority)
        order.append(priority.name)
        budget.settle(grant, used_weight=None, status=200)

    # Asked in reverse order: periodic and history do not fit (66+5 > 60, > 68) and queue;
    # gap (71 <= 76) and stream (71 <= 80) go at once.
    tasks = [asyncio.create_task(take(p)) for p in reversed(list(RestPriority))]
    await _until(lambda: order == ["GAP", "STREAM"], budget)
    clock.now += 60
    await _until(lambda: order == ["GAP", "STREAM", "HISTORY", "PERIODIC"], budget)
    await asyncio.gather(*tasks)


async def test_a_hold_keeps_later_priorities_queued_until_released() -> None:
    budgets = WeightBudgets(clock=FakeClock())
    budgets.hold(RestPriority.GAP)
    budget = budgets.for_url("http://127.0.0.1:1")  # met after the hold: held too
    listen_key = await budget.acquire(1, RestPriority.STREAM)
    gap = asyncio.create_task(budget.acquire(5, RestPriority.GAP))
    await asyncio.sleep(0)
    assert not gap.done()
    assert budgets.status()["127.0.0.1:1"]["held_from"] == "GAP"  # type: ignore[index]
    budgets.hold(None)
    await _until(gap.done, budget)
    for grant in (listen_key, gap.result()):
        budget.settle(grant, used_weight=None, status=200)


def test_registry_shares_one_budget_per_host_and_honours_configured_limits() -> None:
    budgets = WeightBudgets(limits={"fapi.binance.com": 1200})
    a = budgets.for_url("https://fapi.binance.com")
    b = budgets.for_url("https://FAPI.binance.com/")
    assert a is b
    assert a.limit == 1200
    a.set_limit(2400)  # exchangeInfo does not override a configured limit
    assert a.limit == 1200
    other = budgets.for_url("http://127.0.0.1:8000")
    assert other.limit == 2400
    other.set_limit(6000)
    assert other.limit == 6000
    assert host_of("http://127.0.0.1:8000/x") == "127.0.0.1:8000"


# -- BinanceVenue against the simulator ------------------------------------------------------


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(SimConfig(accounts=("alpha",), rate=0, weight_limit_1m=600))
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.aclose()


def _requests_sent(account: str) -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "fillstream_rest_requests"
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("account") == account
    )


async def _venue(sim: Simulator, budgets: WeightBudgets | None = None) -> BinanceVenue:
    acct = sim.accounts[0]
    return await BinanceVenue.create(
        account=acct.name,
        api_key=acct.api_key,
        api_secret=acct.api_secret,
        rest_url=sim.rest_url,
        budget=budgets or WeightBudgets(),
    )


async def test_every_endpoint_lands_on_the_custom_url_signed(sim: Simulator) -> None:
    await sim.trade("alpha", "BTCUSDT", "BUY", "0.010")
    algo = await sim.algo(
        "alpha", "BTCUSDT", "STOP_MARKET", "SELL", trigger_price="1000", close_position=True
    )
    venue = await _venue(sim)
    try:
        assert venue.budget.limit == 600  # read from exchangeInfo rateLimits
        assert abs(venue.clock_offset_ms) < 1000
        key = await venue.create_listen_key()
        assert await venue.keepalive_listen_key() in (key, "")
        trades = await venue.user_trades("BTCUSDT", from_id=0)
        assert len(trades) == 1
        trade = trades[0]
        assert isinstance(trade, UserTrade)  # decoded once, typed
        order_id = trade.orderId
        order = await venue.order("BTCUSDT", order_id)
        assert isinstance(order, Order) and order.status == "FILLED"
        orders = await venue.all_orders("BTCUSDT", order_id=order_id)
        assert [o.orderId for o in orders if isinstance(o, Order)] == [order_id]
        risk = await venue.position_risk()
        assert [(r.symbol, r.positionAmt) for r in risk if isinstance(r, PositionRisk)] == [
            ("BTCUSDT", "0.01")
        ]
        income = await venue.income(symbol="BTCUSDT")
        assert {r.incomeType for r in income if isinstance(r, Income)} >= {"COMMISSION"}
        assert await venue.open_orders() == []
        opened = await venue.open_algo_orders("BTCUSDT")
        assert [a.algoId for a in opened if isinstance(a, AlgoOrder)] == [int(str(algo["algoId"]))]
        one = await venue.algo_order(int(str(algo["algoId"])))
        assert isinstance(one, AlgoOrder) and one.orderType == "STOP_MARKET"
        assert len(await venue.all_algo_orders("BTCUSDT")) == 1
        assert await venue.server_time_ms() > 0
        with pytest.raises(VenueError) as missing:
            await venue.order("BTCUSDT", 987654321)
        assert missing.value.is_not_found
        assert missing.value.endpoint == "order"
        await venue.close_listen_key()
        assert venue.budget.used > 0  # fed by X-MBX-USED-WEIGHT-1M
    finally:
        await venue.aclose()
        await venue.aclose()


async def test_429_pauses_the_host_for_every_account_then_recovers(sim: Simulator) -> None:
    budgets = WeightBudgets()
    venue = await _venue(sim, budgets)
    other = await _venue(sim, budgets)  # same host: same budget
    try:
        assert other.budget is venue.budget
        sim.inject(None, "rest_error", status=429, count=1, retry_after=1)
        with pytest.raises(VenueError) as limited:
            await venue.user_trades("BTCUSDT")
        assert limited.value.is_rate_limited
        assert limited.value.retry_after_s == pytest.approx(1)
        reason, left = venue.budget.paused_for()
        assert reason == "rate_limited"
        assert 0 < left <= 1
        # The other account waits out the pause instead of hitting the venue again.
        assert await other.user_trades("BTCUSDT") == []
        assert venue.budget.paused_for() == ("", 0.0)
    finally:
        await venue.aclose()
        await other.aclose()


async def test_418_ban_stops_all_rest_to_the_host_without_sending(sim: Simulator) -> None:
    venue = await _venue(sim)
    try:
        venue.max_wait_s = 0.5
        sim.inject(None, "rest_error", status=418, count=1, retry_after=30)
        with pytest.raises(VenueError) as banned:
            await venue.user_trades("BTCUSDT")
        assert banned.value.is_banned
        sent = _requests_sent("alpha")
        with pytest.raises(VenueError) as refused:
            await venue.create_listen_key()  # even urgent calls: no REST during a ban
        assert refused.value.status == 418
        assert refused.value.endpoint == "budget"
        assert refused.value.retry_after_s is not None and refused.value.retry_after_s > 20
        assert _requests_sent("alpha") == sent
    finally:
        await venue.aclose()


async def test_clock_skew_is_resynced_once_and_the_call_retried(sim: Simulator) -> None:
    venue = await _venue(sim)
    try:
        sim.inject(None, "clock_skew", ms=-20_000)  # venue clock 20 s behind us
        assert await venue.user_trades("BTCUSDT") == []  # -1021, resync, retry: success
        assert venue.clock_offset_ms == pytest.approx(-20_000, abs=1500)
    finally:
        await venue.aclose()


async def test_no_answer_is_status_zero() -> None:
    budgets = WeightBudgets()
    with pytest.raises(VenueError) as failed:
        await BinanceVenue.create(
            account="x",
            api_key="k",
            api_secret="s",
            rest_url="http://127.0.0.1:9",  # discard port: nothing listens
            budget=budgets,
        )
    assert failed.value.status == 0
    assert failed.value.is_unknown_outcome
    assert default_rest_url(Market.USDM, "demo") == "https://demo-fapi.binance.com"
