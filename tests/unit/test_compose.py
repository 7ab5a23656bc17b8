"""docker-compose.yml cannot run here (no Docker engine): check that it is consistent."""

from __future__ import annotations

from pathlib import Path

import yaml

from stream.broker import KAFKA_VERSION
from stream.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_kafka_is_the_official_image_of_our_version_in_kraft_mode() -> None:
    kafka = compose()["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION}"
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == 1


def test_the_worker_settings_are_settings_the_code_reads() -> None:
    services = compose()["services"]
    worker = services["worker"]
    env = {k: str(v) for k, v in worker["environment"].items()}
    settings = load_settings(None, environ=env)  # raises on any invalid value
    assert settings.broker == "kafka:9092"
    assert int(env["STREAM_PARTITIONS"]) >= worker["deploy"]["replicas"]
    defaults = Settings()
    for topic in ("topic_raw", "topic_enriched", "topic_alerts", "topic_dlq"):
        assert getattr(settings, topic) == getattr(defaults, topic)
    known = {f"STREAM_{name.upper()}" for name in Settings.__dataclass_fields__}
    assert set(env) <= known, set(env) - known
    assert worker["command"] == ["worker"]
    assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
