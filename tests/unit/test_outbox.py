"""Every output confirmed (issues 15 and 26), without a broker: the outbox (a failed send
fails its batch or is sent again, never counted as sent), dead letters that fit, encoding
failures routed per article, and the webhook dispatcher's offset bookkeeping."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, TopicAuthorizationFailedError

from stream.errors import DeliveryError
from stream.records import Article, DeadLetter, encode_dead_letter
from stream.runtime.batches import _Source
from stream.runtime.chain import collect_outputs
from stream.runtime.outbox import Outbox, Retry, permanent
from stream.runtime.pipeline import BatchResult
from stream.webhooks.delivery import _Offsets


class Producer:
    """Hands out futures the test resolves, like aiokafka's send."""

    def __init__(self) -> None:
        self.futures: list[asyncio.Future[Any]] = []
        self.refuse_at_once: Exception | None = None

        self.sent: list[bytes | None] = []

    async def send(self, topic: str, key: bytes | None, value: bytes | None, headers: Any,
                   partition: int | None) -> Any:
        if self.refuse_at_once is not None:
            raise self.refuse_at_once
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        self.sent.append(value)
        return future


async def test_then_runs_only_after_the_broker_acknowledged_every_record() -> None:
    producer = Producer()
    box = Outbox(producer.send)
    done: list[str] = []
    await box.send("t", b"k", b"v1", what="article 1", then=lambda: done.append("1"))
    await box.send("t", b"k", b"v2", what="article 2", then=lambda: done.append("2"))
    confirm = asyncio.ensure_future(box.confirm())
    await asyncio.sleep(0.01)
    assert not confirm.done() and done == []  # nothing is "written" before the acks
    producer.futures[0].set_result("meta")
    await asyncio.sleep(0.01)
    assert not confirm.done() and done == []
    producer.futures[1].set_result("meta")
    assert await confirm == 2 and done == ["1", "2"]


async def test_a_refused_record_raises_a_delivery_error_and_nothing_counts_as_written() -> None:
    producer = Producer()
    box = Outbox(producer.send)
    done: list[str] = []
    await box.send("enriched", b"k", b"v", what="article 1", then=lambda: done.append("1"))
    await box.send("enriched", b"k", b"v", what="article 2", then=lambda: done.append("2"))
    producer.futures[0].set_result("meta")
    producer.futures[1].set_exception(MessageSizeTooLargeError("too large"))
    with pytest.raises(DeliveryError) as caught:
        await box.confirm()
    assert done == []
    assert caught.value.topic == "enriched" and caught.value.what == "article 2"
    assert "was not written" in str(caught.value) and "max.message.bytes" in str(caught.value)


async def test_a_record_the_producer_refuses_at_once_is_a_delivery_error() -> None:
    producer = Producer()
    producer.refuse_at_once = MessageSizeTooLargeError("larger than max_request_size")
    with pytest.raises(DeliveryError, match="article 7"):
        await Outbox(producer.send).send("enriched", None, b"v", what="article 7")


async def test_a_send_that_failed_is_never_counted_as_sent_without_a_retry() -> None:
    # Review finding 1 (issue 26): faust's ProducerSendError was turned into "not sent" and
    # the batch committed.  Every failure now fails the batch (exactly-once: no retry).
    producer = Producer()
    box = Outbox(producer.send)
    done: list[str] = []
    await box.send("t", None, b"v", then=lambda: done.append("x"))
    producer.futures[0].set_exception(KafkaTimeoutError("broker away"))
    with pytest.raises(DeliveryError, match="KafkaTimeoutError"):
        await box.confirm()
    assert done == []


async def test_a_transient_failure_is_sent_again_until_acknowledged_and_only_the_failed_records() -> None:
    producer = Producer()
    events: list[str] = []

    async def reset() -> None:
        events.append("reset")

    box = Outbox(producer.send, retry=Retry(trouble=lambda reason: events.append("trouble"), reset=reset,
                                            recovered=lambda: events.append("recovered"), first=0.01))
    done: list[str] = []
    await box.send("t", None, b"a", then=lambda: done.append("a"))
    await box.send("t", None, b"b", then=lambda: done.append("b"))
    producer.futures[0].set_result("meta")
    producer.futures[1].set_exception(KafkaTimeoutError("broker away"))
    confirm = asyncio.ensure_future(box.confirm())
    while len(producer.futures) < 3:
        await asyncio.sleep(0.005)
    assert done == [] and producer.sent == [b"a", b"b", b"b"]  # only b again
    producer.futures[2].set_exception(KafkaTimeoutError("still away"))
    while len(producer.futures) < 4:
        await asyncio.sleep(0.005)
    producer.futures[3].set_result("meta")
    assert await confirm == 2
    assert done == ["a", "b"] and box.resent == 2
    assert events == ["trouble", "reset", "trouble", "reset", "recovered"]


async def test_a_permanent_failure_is_not_retried() -> None:
    producer = Producer()
    box = Outbox(producer.send, retry=Retry(first=0.01))
    await box.send("alerts", None, b"v", what="alert 1")
    producer.futures[0].set_exception(TopicAuthorizationFailedError())
    with pytest.raises(DeliveryError, match="alert 1"):
        await box.confirm()
    assert len(producer.futures) == 1


def test_permanent_failures_are_the_ones_sending_again_cannot_cure() -> None:
    assert permanent(TopicAuthorizationFailedError()) and permanent(MessageSizeTooLargeError())
    assert permanent(DeliveryError("t", "x", MessageSizeTooLargeError()))
    assert not permanent(KafkaTimeoutError()) and not permanent(TimeoutError())


async def test_a_record_without_an_answer_is_a_delivery_error_after_the_timeout() -> None:
    producer = Producer()
    box = Outbox(producer.send, timeout=0.05)
    await box.send("alerts", None, b"v", what="alert a")
    with pytest.raises(DeliveryError, match="no answer from the broker"):
        await box.confirm()


async def test_the_metadata_of_each_acknowledged_record_is_handed_on() -> None:
    producer = Producer()
    box = Outbox(producer.send)
    offsets: list[int] = []
    await box.send("changelog", b"k", b"v", written=lambda meta: offsets.append(meta))
    producer.futures[0].set_result(41)
    await box.confirm()
    assert offsets == [41]


def test_a_dead_letter_that_fits_carries_the_whole_original() -> None:
    letter = DeadLetter(error_type="RecordError", message="bad", stage="decode", original=b"x" * 1000)
    value = encode_dead_letter(letter, limit=10_000)
    data = orjson.loads(value)
    assert base64.b64decode(data["original"]) == b"x" * 1000
    assert data["original_size"] == 1000 and data["original_truncated"] is False


def test_a_dead_letter_whose_original_would_not_fit_carries_its_start_and_says_so() -> None:
    original = bytes(range(256)) * 400  # 102,400 bytes
    letter = DeadLetter(error_type="RecordError", message="too big", stage="decode", original=original,
                        topic="articles.raw", partition=2, offset=41)
    value = encode_dead_letter(letter, limit=50_000, headers_size=2_000)
    assert len(value) + 2_000 <= 50_000
    data = orjson.loads(value)
    kept = base64.b64decode(data["original"])
    assert original.startswith(kept) and 30_000 < len(kept) < len(original)
    assert data["original_size"] == len(original) and data["original_truncated"] is True
    assert data["source"] == {"topic": "articles.raw", "partition": 2, "offset": 41}
    assert ("stream-original-truncated", f"{len(kept)} of {len(original)} bytes".encode()) in letter.headers()


def test_an_article_a_plugin_filled_with_a_set_is_a_dead_letter_and_the_others_are_published() -> None:
    good = Article(id="good", text="Troops moved.", clean_text="Troops moved.")
    bad = Article(id="bad", text="A set.", clean_text="A set.", extra={"plugin": {"a", "set"}})
    bad_alert = Article(id="bad-alert", text="x", clean_text="x", alerts=[{"rule_id": "r", "when": object()}])
    out = collect_outputs(BatchResult(articles=[good, bad, bad_alert]), worker="w", max_record_bytes=10**6,
                          original={id(bad): b"raw bad"})
    assert [key for key, _v, _a in out.enriched] == [b"good"]
    dead = {article.id: letter for article, letter in out.dead}
    assert set(dead) == {"bad", "bad-alert"} and out.alerts == []
    assert dead["bad"].error_type == "EncodeError" and dead["bad"].stage == "publish"
    assert "set" in dead["bad"].message and dead["bad"].original == b"raw bad"


def test_a_handoff_record_of_the_previous_version_still_names_its_original() -> None:
    old = {"article": {}, "origin": {"topic": "articles.raw", "partition": 1, "offset": 9,
                                     "key": base64.b64encode(b"id-1").decode(),
                                     "value": base64.b64encode(b'{"id": "id-1"}').decode(),
                                     "headers": [["trace", base64.b64encode(b"t").decode()]]}}
    source = _Source.from_handoff(old)
    assert (source.topic, source.partition, source.offset) == ("articles.raw", 1, 9)
    assert source.key == b"id-1" and source.value == b'{"id": "id-1"}' and source.headers == [("trace", b"t")]
    new = _Source.from_handoff({"article": {}, "source": source.coordinates()})
    assert new.value is None and new.coordinates() == {"topic": "articles.raw", "partition": 1, "offset": 9}


def test_the_dispatcher_commits_only_assigned_partitions_and_forgets_revoked_ones() -> None:
    offsets = _Offsets()
    a, b = TopicPartition("alerts", 0), TopicPartition("alerts", 1)
    offsets.add(a, 5, 1)
    offsets.add(a, 6, 0)
    offsets.add(b, 3, 0)
    assert offsets.committable() == {a: 5, b: 4}
    assert offsets.committable([b]) == {b: 4}  # a was revoked: never committed by this consumer
    offsets.forget([a])
    offsets.done(a, 5)  # a job of a forgotten partition finishing later changes nothing
    assert offsets.committable() == {b: 4}


def test_records_a_processor_emits_go_out_with_their_article_and_a_bad_one_takes_its_article_down() -> None:
    good = Article(id="good", text="Troops moved.", clean_text="Troops moved.")
    good.emit("stories", "s1", {"id": "s1", "articles": 2})
    good.emit("stories", "s0", None)  # a tombstone
    bad = Article(id="bad", text="x", clean_text="x")
    bad.emit("stories", "s2", {"ids": {"a", "set"}})
    out = collect_outputs(BatchResult(articles=[good, bad]), worker="w", max_record_bytes=10**6, original={})
    assert [(t, k, v) for t, k, v, _a, _value in out.records] == [("stories", b"s1", b'{"id":"s1","articles":2}'),
                                                                  ("stories", b"s0", None)]
    assert [key for key, _v, _a in out.enriched] == [b"good"]
    assert [(a.id, letter.error_type) for a, letter in out.dead] == [("bad", "EncodeError")]
    assert "outputs" not in orjson.loads(out.enriched[0][1])  # not part of the enriched record
