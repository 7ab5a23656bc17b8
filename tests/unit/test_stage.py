"""The stage's batch limit (issue 26): a light chain takes larger batches, a heavy one keeps
``batch_size``, and an exactly-once split grows back.  The loop itself runs against the real
broker in tests/integration."""

from __future__ import annotations

from stream.ops.health import Health
from stream.ops.metrics import WorkerMetrics
from stream.runtime.stage import BATCH_GROWTH, HEAVY_BATCH, LIGHT_BATCH, Stage
from stream.settings import Settings


async def _noop(box: object, records: list[object]) -> None:
    return None


def _stage(batch_size: int = 64) -> Stage:
    metrics = WorkerMetrics()
    return Stage("raw", "articles.raw", Settings(batch_size=batch_size), _noop, health=Health(metrics, 30),
                 metrics=metrics)


def test_a_light_chain_doubles_its_batches_up_to_the_growth_limit() -> None:
    stage = _stage()
    sizes = []
    for _ in range(6):
        stage._adapt(stage.limit, LIGHT_BATCH / 10)
        sizes.append(stage.limit)
    assert sizes == [128, 256, 512, 512, 512, 512] and sizes[-1] == 64 * BATCH_GROWTH


def test_a_partial_batch_does_not_grow_the_limit() -> None:
    stage = _stage()
    stage._adapt(10, LIGHT_BATCH / 10)  # little arrived: nothing says the chain is light at 64
    assert stage.limit == 64


def test_a_heavy_batch_halves_the_limit_back_to_batch_size_and_no_lower() -> None:
    stage = _stage()
    stage.limit = 512
    stage._adapt(512, HEAVY_BATCH * 2)
    assert stage.limit == 256
    for _ in range(5):
        stage._adapt(stage.limit, HEAVY_BATCH * 2)
    assert stage.limit == 64
    stage._adapt(64, (LIGHT_BATCH + HEAVY_BATCH) / 2)  # in between: kept
    assert stage.limit == 64


def test_an_exactly_once_split_grows_back_to_batch_size_whatever_the_time() -> None:
    stage = _stage()
    stage.limit = 8  # halved three times after transaction timeouts
    stage._adapt(8, HEAVY_BATCH * 2)
    assert stage.limit == 16
    stage._adapt(16, HEAVY_BATCH * 2)
    stage._adapt(32, HEAVY_BATCH * 2)
    assert stage.limit == 64
