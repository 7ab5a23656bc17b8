"""The local broker launcher against a real Apache Kafka."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from stream.errors import BrokerError
from stream.tools.broker import LocalBroker

pytestmark = pytest.mark.integration


def test_starting_a_running_broker_is_a_no_op_with_a_message(broker: LocalBroker) -> None:
    assert "already running" in broker.start()
    status = broker.status()
    assert status.running and status.pid
    assert "Kafka Server started" in broker.log_path.read_text()


def test_a_port_taken_by_another_program_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        other = LocalBroker(port, directory=tmp_path / "b")
        with pytest.raises(BrokerError, match=f"port {port} on 127.0.0.1 is already in use by another program"):
            other.start()


def test_stopping_a_broker_that_is_not_running_says_so(tmp_path: Path) -> None:
    assert "nothing to do" in LocalBroker(19999, directory=tmp_path / "none").stop()


def test_a_second_broker_starts_and_stops_cleanly(tmp_path: Path) -> None:
    with socket.socket() as sock:  # two free ports in a row are very likely above a free one
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    local = LocalBroker(port, controller_port=port + 1, directory=tmp_path / "k")
    try:
        assert "broker started" in local.start()
        assert local.status().running
    finally:
        assert "stopped" in local.stop()
    assert not local.status().running


def test_a_cluster_id_that_starts_with_a_dash_still_formats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    import uuid

    fixed = uuid.UUID(bytes=bytes([0xF8]) + bytes(15))
    assert base64.urlsafe_b64encode(fixed.bytes).startswith(b"-")
    monkeypatch.setattr("stream.tools.broker.uuid.uuid4", lambda: fixed)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    local = LocalBroker(port, controller_port=port + 1, directory=tmp_path / "dash")
    try:
        assert "broker started" in local.start()
    finally:
        local.stop()


def test_the_test_kit_deletes_test_topics_and_only_those(broker: LocalBroker) -> None:
    """The session fixture deletes the topics of test sessions at its start and end, so
    they do not pile up on a developer's broker (3.7 GB and a 90 s start were seen)."""
    import asyncio
    import uuid

    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from stream.testing import delete_test_topics

    tag = uuid.uuid4().hex[:8]
    ours, theirs = f"test-{tag}.raw", f"keep-{tag}.raw"

    async def topics(create: bool = False) -> set[str]:
        admin = AIOKafkaAdminClient(**broker.target().options())
        await admin.start()
        try:
            if create:
                await admin.create_topics([NewTopic(n, 1, 1) for n in (ours, theirs)])
            return set(await admin.list_topics())
        finally:
            await admin.close()

    def listed_soon(wanted: Callable[[set[str]], bool]) -> set[str]:
        # CreateTopics and DeleteTopics return once the controller has the change; the
        # broker's metadata, which list_topics reads, follows a moment later (CI once
        # listed the topics it had just created as absent).
        deadline = time.monotonic() + 30
        while not wanted(names := asyncio.run(topics())) and time.monotonic() < deadline:
            time.sleep(0.2)
        return names

    asyncio.run(topics(create=True))
    assert {ours, theirs} <= listed_soon(lambda names: {ours, theirs} <= names)
    assert delete_test_topics(broker) >= 1
    left = listed_soon(lambda names: ours not in names)
    assert ours not in left and theirs in left
    delete_test_topics(broker, (f"keep-{tag}",))
