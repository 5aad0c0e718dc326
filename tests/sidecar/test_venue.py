"""The shared REST weight budget: priorities, headroom, 429 pauses, 418 bans, probing.

Pure logic over a fake clock (no venue needed); the venue's own tests drive it end to end.
"""

from __future__ import annotations

import asyncio

import pytest

from fillstream.ledger import RestPriority, VenueError
from fillstream.sidecar.venue_budget import WeightBudget, WeightBudgets, host_of


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
