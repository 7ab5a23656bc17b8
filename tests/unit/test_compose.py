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


def test_prometheus_scrapes_every_worker_replica_on_the_web_port() -> None:
    services = compose()["services"]
    worker_env = {k: str(v) for k, v in services["worker"]["environment"].items()}
    port = int(load_settings(None, environ=worker_env).web.rsplit(":", 1)[1])
    assert str(port) in services["worker"]["expose"]
    prometheus = services["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus:")
    mounted = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    config = yaml.safe_load((ROOT / mounted["/etc/prometheus/prometheus.yml"]).read_text())
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    [sd] = job["dns_sd_configs"]
    assert sd["names"] == ["worker"] and sd["port"] == port
    assert "/health/live" in " ".join(services["worker"]["healthcheck"]["test"])


def test_the_webhook_sink_is_subscribed_and_its_network_trusted() -> None:
    import ipaddress

    from stream.webhooks.config import load_subscriptions

    services = compose()["services"]
    env = {k: str(v) for k, v in services["worker"]["environment"].items()}
    settings = load_settings(None, environ=env)
    mounted = {v.split(":")[1]: v.split(":")[0] for v in services["worker"]["volumes"]}
    subs = load_subscriptions(str(ROOT / mounted[settings.webhooks].removeprefix("./")))
    [endpoint] = subs.endpoints
    sink = services["webhook-sink"]
    assert endpoint.url.startswith(f"http://webhook-sink:{sink['command'][-1]}/")
    assert sink["environment"]["STREAM_SINK_SECRET"] == endpoint.secrets[0]
    subnet = compose()["networks"]["stream"]["ipam"]["config"][0]["subnet"]
    assert settings.webhooks_allow_networks == (subnet,)
    assert ipaddress.ip_network(subnet).is_private


def test_the_image_installs_every_built_in_plugin() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for plugin in ("clean", "ner", "dedup", "alerts"):
        assert f"./plugins/{plugin}" in dockerfile
