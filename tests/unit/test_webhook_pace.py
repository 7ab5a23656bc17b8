"""#20 rate limits: a token bucket per endpoint, and a 429 with Retry-After pausing every
delivery to the endpoint."""

from __future__ import annotations

import asyncio

import pytest

from stream.errors import ConfigError
from stream.webhooks.config import parse_subscriptions
from stream.webhooks.pace import Pace

SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


class Clock:
    """Simulated time: sleeping advances it (many takers run in one event loop)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 1e-6)
        await asyncio.sleep(0)


async def _sends(pace: Pace, clock: Clock, takers: int, until: float) -> list[float]:
    times: list[float] = []

    async def taker() -> None:
        while clock.now < until:
            await pace.take()
            if clock.now < until:
                times.append(clock.now)

    await asyncio.gather(*(taker() for _ in range(takers)))
    return times


@pytest.mark.parametrize("rate", [0.5, 5, 20])
async def test_a_minute_of_alerts_is_held_to_the_rate_within_ten_percent(rate: float) -> None:
    """More alerts than the endpoint may take, from many jobs at once, for a minute."""
    clock = Clock()
    pace = Pace(rate, clock=clock, sleep=clock.sleep)
    start = clock.now
    times = await _sends(pace, clock, takers=50, until=start + 60)
    assert abs(len(times) - rate * 60) <= 0.1 * rate * 60 + 1, len(times)
    # and in every 10 s stretch, not only over the minute (no burst beyond one second's worth)
    for t0 in range(0, 60, 10):
        inside = [t for t in times if start + t0 <= t < start + t0 + 10]
        assert len(inside) <= rate * 10 + max(1.0, rate), (t0, len(inside))


async def test_without_a_rate_nothing_waits() -> None:
    clock = Clock()
    pace = Pace(None, clock=clock, sleep=clock.sleep)
    for _ in range(1000):
        await pace.take()
    assert clock.now == 1000.0


async def test_a_pause_holds_every_delivery_to_the_endpoint_until_it_ends() -> None:
    clock = Clock()
    pace = Pace(10, clock=clock, sleep=clock.sleep)
    await pace.take()
    pace.pause(30)  # a 429 with Retry-After: 30
    assert pace.paused
    done: list[float] = []

    async def one() -> None:
        await pace.take()
        done.append(clock.now)

    await asyncio.gather(*(one() for _ in range(5)))
    assert min(done) >= 1030.0 and not pace.paused
    pace.pause(5)
    pace.pause(1)  # a shorter pause never shortens a longer one
    assert pace.paused_until == pytest.approx(clock.now + 5)


@pytest.mark.parametrize("value", ["0", "-1", '"fast"', "5000", "true"])
def test_a_bad_rate_stops_the_load_with_the_line(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_subscriptions(f'[[endpoints]]\nid = "x"\nurl = "https://h.example.com/x"\nsecret = "{SECRET}"\n'
                            f"rate = {value}\n", "w.toml")
    assert "w.toml:5" in str(info.value) and "rate must be a number of deliveries per second" in str(info.value)
