"""Adaptive sub-call concurrency: backs off when Bedrock throttles, climbs back when it stops.

Driven through the real broker and boto3 client against the Converse fake, which
here plays a provider with a fixed capacity: a request beyond it is throttled.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from rlm_mcp.config import Settings
from rlm_mcp.core.subcalls.broker import AdaptiveLimit, Budget, SubcallBroker, SubcallLog
from rlm_mcp.models import ModelRouter
from rlm_mcp.testing.bedrock import ConverseFake, ConverseRequest, Fault, Reply, throttled

pytestmark = pytest.mark.anyio
MODEL = "fake.sub-model-v1"


class Provider:
    """At most ``capacity`` requests at once; the others are throttled."""

    def __init__(self, capacity: int | None):
        self.capacity = capacity
        self.in_flight = 0
        self.peak = 0
        self.throttled = 0
        self.lock = threading.Lock()

    def __call__(self, request: ConverseRequest) -> Reply | Fault:
        with self.lock:
            if self.capacity is not None and self.in_flight >= self.capacity:
                self.throttled += 1
                return throttled()
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            threading.Event().wait(0.05)  # the work a request takes
            return Reply(text="ok")
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.fixture
def broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    provider = Provider(capacity=3)
    with ConverseFake(provider) as fake:
        for key, value in {
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": fake.url,
            "AWS_ACCESS_KEY_ID": "AKIAFAKEFAKEFAKE",
            "AWS_SECRET_ACCESS_KEY": "fake-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(key, value)
        settings = Settings(sub_model=MODEL, subcall_concurrency=12, bedrock_max_attempts=6, data_dir=tmp_path)
        yield SubcallBroker(settings, ModelRouter(settings)), provider


async def test_backs_off_on_throttling_and_recovers(broker) -> None:  # type: ignore[no-untyped-def]
    subcalls, provider = broker
    handle = subcalls.handler(budget=Budget(10_000), log=SubcallLog(), default_model=None)
    replies = await handle([f"p{i}" for i in range(60)], MODEL)
    assert all(r.error is None for r in replies), [r.error for r in replies if r.error][:3]
    shared = subcalls.limit_for(MODEL)
    assert provider.throttled > 0 and shared.cuts >= 1
    assert shared.limit < shared.ceiling  # it backed off

    throttled_before = provider.throttled
    await handle([f"q{i}" for i in range(60)], MODEL)
    later = provider.throttled - throttled_before
    assert later < throttled_before  # fewer throttles once the limit has adapted

    # The provider recovers: the limit climbs back and calls run wider than the old capacity.
    provider.capacity = None
    provider.peak = 0
    for _ in range(20):
        await handle([f"r{i}" for i in range(48)], MODEL)
        if shared.limit >= 12:
            break
    assert shared.limit >= 12
    assert provider.peak > 3


async def test_limit_halves_once_per_round_and_grows_back() -> None:
    limit = AdaptiveLimit(16, "m")
    tokens = [object() for _ in range(10)]
    for token in tokens:
        await limit.limiter.acquire_on_behalf_of(token)
    epoch = limit.epoch
    limit.overloaded(epoch)
    assert limit.limit == 5  # half of the 10 in flight
    limit.overloaded(epoch)  # a call from the same round: ignored
    assert limit.limit == 5 and limit.cuts == 1
    for token in tokens:
        limit.limiter.release_on_behalf_of(token)
    for _ in range(5):
        limit.succeeded()
    assert limit.limit == 6  # one step per round of successes
    for _ in range(200):
        limit.succeeded()
    assert limit.limit == 16  # never past the ceiling
