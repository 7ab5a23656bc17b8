"""The whole chain against a SASL_SSL broker (SCRAM-SHA-512, a locally made CA): produce,
worker, enriched records, alerts, webhooks, ``tail``, ``dlq replay``; the clear errors of a
wrong password and an unknown CA; and no secret in any log, record or page of the run."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from stream.runtime.kafka import read_records
from stream.testing import StreamTopics, StreamWorker, wait_for
from stream.tools.broker import LocalBroker, make_certificates

from ..conftest import ROOT, SAMPLES
from ..webhook_server import Receiver

pytestmark = pytest.mark.integration

SECRET = "whsec_" + base64.b64encode(b"secure-kafka-test-secret-0123456").decode()


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A single node with a SASL_SSL listener, in a directory of its own."""
    port = int(os.environ.get("STREAM_TEST_SECURE_PORT", "19292"))
    local = LocalBroker(port, sasl_ssl=True, directory=tmp_path_factory.mktemp("secure-broker"))
    local.start()
    yield local
    local.stop()


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stream", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def records(broker: LocalBroker, topic: str) -> list[bytes]:
    import asyncio

    async def run() -> list[bytes]:
        return [r.value or b"" async for r in read_records(broker.target(), topic, timeout=2)]

    return asyncio.run(run())


def test_the_whole_chain_runs_over_sasl_ssl_and_no_secret_leaks(
        secure_broker: LocalBroker, topics: StreamTopics, tmp_path: Path) -> None:
    password = secure_broker.password_file.read_text().strip()
    assert secure_broker.client_env()["STREAM_SECURITY_PROTOCOL"] == "SASL_SSL"
    receiver = Receiver().start()
    subs = tmp_path / "webhooks.toml"
    subs.write_text(f'[delivery]\nschedule = [0, 0.5]\n[[endpoints]]\nid = "sink"\nurl = "{receiver.url}"\n'
                    f'secret = "{SECRET}"\n')
    # The password reaches the worker in the environment, not as a file: the harder case
    # for leaks (it is in the process's settings).
    env = topics.env(secure_broker, tmp_path / "data", STREAM_WEBHOOKS=str(subs), STREAM_WEBHOOKS_ALLOW_LOOPBACK="1",
                     STREAM_SASL_PASSWORD=password, STREAM_LOG_LEVEL="debug", STREAM_WEB_TOKEN="dash-token-123")
    del env["STREAM_SASL_PASSWORD_FILE"]
    worker = StreamWorker(secure_broker, topics, tmp_path, name="secure", STREAM_WEBHOOKS=str(subs),
                          STREAM_WEBHOOKS_ALLOW_LOOPBACK="1", STREAM_SASL_PASSWORD=password,
                          STREAM_SASL_PASSWORD_FILE="", STREAM_LOG_LEVEL="debug", STREAM_WEB_TOKEN="dash-token-123")
    outputs: list[str] = []
    try:
        url = worker.web_url(timeout=180)
        produced = cli(env, "produce", *map(str, SAMPLES), str(ROOT / "examples" / "malformed.jsonl"))
        outputs += [produced.stdout, produced.stderr]
        assert produced.returncode == 0, produced.stderr
        ids = {p.stem for p in SAMPLES}
        enriched = wait_for(secure_broker, topics.enriched, ids, timeout=240, workers=[worker])
        assert all(enriched[i]["entities"] for i in ids)
        dead = [orjson.loads(v) for v in records(secure_broker, topics.dlq)]
        assert len(dead) == 2, dead
        alerts = records(secure_broker, topics.alerts)
        assert alerts, "the sample articles raise alerts"
        receiver.wait(len(alerts), timeout=120)
        assert len({r.headers["webhook-id"] for r in receiver.requests}) >= len(alerts)

        tail = cli(env, "tail", topics.enriched, "-n", "0")
        outputs += [tail.stdout, tail.stderr]
        assert tail.returncode == 0, tail.stderr
        assert {orjson.loads(line)["id"] for line in tail.stdout.splitlines()} == ids
        replay = cli(env, "dlq", "replay")
        outputs += [replay.stdout, replay.stderr]
        assert replay.returncode == 0, replay.stderr
        assert "replayed 2 of 2" in replay.stdout
        wait_for_count = 4
        import time

        deadline = time.monotonic() + 120
        while len(records(secure_broker, topics.dlq)) < wait_for_count and time.monotonic() < deadline:
            time.sleep(1)
        assert len(records(secure_broker, topics.dlq)) == wait_for_count

        pages = {}
        for path in ("/metrics", "/health/live", "/health/ready", "/api/dashboard?token=dash-token-123",
                     "/?token=dash-token-123"):
            with urllib.request.urlopen(url + path, timeout=10) as response:
                pages[path] = response.read().decode()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + "/api/dashboard", timeout=10)
        assert refused.value.code == 401
    finally:
        status = worker.stop()
        receiver.stop()
    assert status == 0, worker.log()

    everything = {
        "worker log": worker.log_path.read_text(errors="replace"),
        "command line": "\n".join(outputs),
        **{f"page {k}": v for k, v in pages.items()},
        **{f"topic {t}": b"\n".join(records(secure_broker, t)).decode(errors="replace")
           for t in (topics.enriched, topics.alerts, topics.dlq)},
        "webhook deliveries": "\n".join(r.body.decode() + str(r.headers) for r in receiver.requests),
    }
    secrets = [password, "dash-token-123", "PRIVATE KEY"]
    secrets += [(secure_broker.tls_dir / name).read_text().splitlines()[1] for name in ("broker.key", "ca.key")]
    for where, text in everything.items():
        for secret in secrets:
            assert secret not in text, f"a secret ({secret[:4]}...) is in the {where}"


def test_a_wrong_password_stops_the_worker_and_the_command_line_with_a_clear_error(
        secure_broker: LocalBroker, topics: StreamTopics, tmp_path: Path) -> None:
    wrong = "not-the-password-42"
    env = topics.env(secure_broker, tmp_path / "data", STREAM_SASL_PASSWORD=wrong)
    del env["STREAM_SASL_PASSWORD_FILE"]
    for args in (("worker",), ("tail", topics.enriched)):
        done = cli(env, *args, timeout=180)
        output = done.stdout + done.stderr
        assert done.returncode == 77, output  # EX_NOPERM
        assert "refused the login SASL_SSL (SCRAM-SHA-512 as 'stream')" in output, output
        assert "sasl_password" in output
        assert wrong not in output


def test_an_unknown_ca_stops_the_program_with_a_clear_error(
        secure_broker: LocalBroker, topics: StreamTopics, tmp_path: Path) -> None:
    other = tmp_path / "other-ca"
    make_certificates(other)
    env = topics.env(secure_broker, tmp_path / "data", STREAM_SSL_CAFILE=str(other / "ca.pem"))
    for args in (("worker",), ("produce", str(SAMPLES[0]))):
        done = cli(env, *args, timeout=180)
        output = done.stdout + done.stderr
        assert done.returncode == 78, output  # EX_CONFIG: a CA to set
        assert "is not trusted" in output and "set ssl_cafile" in output, output


def test_a_plaintext_client_on_the_tls_listener_is_told_what_to_set(
        secure_broker: LocalBroker, topics: StreamTopics, tmp_path: Path) -> None:
    env = topics.env(secure_broker, tmp_path / "data")
    for name in ("STREAM_SECURITY_PROTOCOL", "STREAM_SASL_MECHANISM", "STREAM_SASL_USERNAME",
                 "STREAM_SASL_PASSWORD_FILE", "STREAM_SSL_CAFILE"):
        del env[name]
    done = cli(env, "tail", topics.enriched)
    assert done.returncode == 69  # EX_UNAVAILABLE
    assert "set security_protocol" in done.stderr, done.stderr
