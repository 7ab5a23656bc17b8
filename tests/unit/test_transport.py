"""stream's faust transport: the worker consumer long-polls briefly, and every producer
batches in large batches (see stream/transport.py and stream/kafka.py for the measurements)."""

from __future__ import annotations

from typing import Any

import pytest
from faust.transport.drivers import aiokafka as driver

from stream import transport
from stream.app import create_app
from stream.kafka import BATCH_BYTES, make_producer
from stream.settings import Settings


def test_the_app_uses_streams_transport() -> None:
    app = create_app(Settings())
    assert type(app.transport) is transport._Transport
    assert app.transport.Consumer is transport._Consumer


def test_worker_consumer_fetch_wait_is_short(monkeypatch: pytest.MonkeyPatch) -> None:
    class Created:
        _fetch_max_wait_ms = 1500  # faust's value

    monkeypatch.setattr(driver.AIOKafkaConsumerThread, "_create_worker_consumer",
                        lambda self, t: Created())
    consumer: Any = object.__new__(transport._ConsumerThread)._create_worker_consumer(None)
    # With 1500 ms a worker stalled ~1.4 s every ~1,200 records (stream/transport.py).
    assert consumer._fetch_max_wait_ms == transport.FETCH_MAX_WAIT_MS <= 100


@pytest.mark.asyncio
async def test_producers_batch_large() -> None:
    app = create_app(Settings())
    assert app.conf.producer_max_batch_size == BATCH_BYTES
    producer = make_producer("127.0.0.1:9")
    # aiokafka's default is 16 KiB: two to four articles per produce request.
    assert producer._message_accumulator._batch_size == BATCH_BYTES >= 256 * 1024
    assert BATCH_BYTES < 1024 * 1024  # under the broker's default message.max.bytes
    await producer.stop()
