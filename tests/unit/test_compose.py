"""docker-compose.yml cannot run here (no Docker engine): check that it is consistent."""

from __future__ import annotations

from pathlib import Path

import yaml

from stream.settings import Settings, load_settings
from stream.tools.broker import KAFKA_VERSION, make_certificates

ROOT = Path(__file__).resolve().parents[2]
BROKERS = ("kafka-1", "kafka-2", "kafka-3")


def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))
    return {k: v for k, v in pairs}


def worker_environment(tmp: Path) -> tuple[dict[str, str], Settings]:
    """The worker's environment (its variables and its env file) and the settings it gives,
    with the two container paths it names (the CA, the password secret) checked against
    the mounts and pointed at local stand-ins for loading."""
    services = compose()["services"]
    worker = services["worker"]
    env = {k: str(v) for k, v in worker["environment"].items()}
    for name in worker["env_file"]:
        env.update(env_file(ROOT / name))
    mounts = {v.split(":")[1]: v.split(":")[0] for v in worker["volumes"]}
    assert env["STREAM_SSL_CAFILE"] in mounts, "the CA file is mounted into the worker"
    [secret] = worker["secrets"]
    assert env["STREAM_SASL_PASSWORD_FILE"] == f"/run/secrets/{secret}"
    assert compose()["secrets"][secret]["file"].startswith("./deploy/secrets/")
    make_certificates(tmp / "tls")
    (tmp / "password").write_text("not-the-real-one\n")
    local = dict(env, STREAM_SSL_CAFILE=str(tmp / "tls" / "ca.pem"), STREAM_SASL_PASSWORD_FILE=str(tmp / "password"))
    return env, load_settings(None, environ=local)  # raises on any invalid value


def test_kafka_is_three_kraft_nodes_of_the_official_image_with_replication_3_and_min_isr_2() -> None:
    services = compose()["services"]
    assert {name for name in services if name.startswith("kafka-") and name != "kafka-users"} == set(BROKERS)
    ids = set()
    for n, name in enumerate(BROKERS, start=1):
        kafka = services[name]
        assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION}"
        env = kafka["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == ",".join(f"{i}@{b}:9093" for i, b in enumerate(BROKERS, 1))
        assert env["KAFKA_NODE_ID"] == n and kafka["hostname"] == name
        ids.add(env["KAFKA_NODE_ID"])
        assert f"SASL_SSL://{name}:9094" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3 and env["KAFKA_MIN_INSYNC_REPLICAS"] == 2
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 3
        assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == 3
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == 2
        assert "SCRAM-SHA-512" in env["KAFKA_SASL_ENABLED_MECHANISMS"]
        assert env["KAFKA_SSL_KEYSTORE_TYPE"] == "PEM"
        tls_mount = next(v for v in kafka["volumes"] if v.startswith("./deploy/tls:"))
        assert env["KAFKA_SSL_KEYSTORE_LOCATION"].startswith(tls_mount.split(":")[1] + "/")
    assert ids == {1, 2, 3}


def test_the_worker_settings_are_settings_the_code_reads(tmp_path: Path) -> None:
    services = compose()["services"]
    worker = services["worker"]
    env, settings = worker_environment(tmp_path)
    assert settings.broker == ",".join(f"{b}:9094" for b in BROKERS)
    assert settings.security_protocol == "SASL_SSL" and settings.sasl_mechanism == "SCRAM-SHA-512"
    assert (settings.replication_factor, settings.min_insync_replicas) == (3, 2)
    assert int(env["STREAM_PARTITIONS"]) >= worker["deploy"]["replicas"]
    defaults = Settings()
    for topic in ("topic_raw", "topic_enriched", "topic_alerts", "topic_dlq"):
        assert getattr(settings, topic) == getattr(defaults, topic)
    known = {f"STREAM_{name.upper()}" for name in Settings.__dataclass_fields__}
    assert set(env) <= known, set(env) - known
    assert "STREAM_SASL_PASSWORD" not in env, "the password is a secret file, not a variable"
    assert worker["command"] == ["worker"]
    assert worker["depends_on"]["kafka-users"]["condition"] == "service_completed_successfully"
    # One worker per host: each replica has a CPU limit, which the NER default follows
    # (else three replicas on one machine would each start a model process per host core).
    assert float(worker["deploy"]["resources"]["limits"]["cpus"]) >= 1
    assert not any(k.startswith("STREAM_PLUGIN_NER") for k in env), "processes follows the CPU limit"


def test_the_scram_user_is_the_workers_user_with_the_same_secret(tmp_path: Path) -> None:
    services = compose()["services"]
    _env, settings = worker_environment(tmp_path)
    users = services["kafka-users"]
    command = " ".join(users["command"])
    assert f"--entity-name {settings.sasl_username}" in command
    assert f"{settings.sasl_mechanism}=[password=$$(cat /run/secrets/kafka_password)]" in command
    assert users["secrets"] == services["worker"]["secrets"]
    assert all(users["depends_on"][b]["condition"] == "service_healthy" for b in BROKERS)


def test_prometheus_scrapes_every_worker_replica_on_the_web_port(tmp_path: Path) -> None:
    services = compose()["services"]
    _env, settings = worker_environment(tmp_path)
    port = int(settings.web.rsplit(":", 1)[1])
    assert str(port) in services["worker"]["expose"]
    prometheus = services["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus:")
    mounted = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    config = yaml.safe_load((ROOT / mounted["/etc/prometheus/prometheus.yml"]).read_text())
    job, ingesters = config["scrape_configs"]
    assert ingesters["dns_sd_configs"][0]["names"] == ["ingester"]
    assert ingesters["dns_sd_configs"][0]["port"] == 6067 and "6067" in services["ingester"]["expose"]
    assert job["metrics_path"] == "/metrics"
    [sd] = job["dns_sd_configs"]
    assert sd["names"] == ["worker"] and sd["port"] == port
    assert "/health/live" in " ".join(services["worker"]["healthcheck"]["test"])


def test_the_webhook_sink_is_subscribed_and_its_network_trusted(tmp_path: Path) -> None:
    import ipaddress

    from stream.webhooks.config import load_subscriptions

    services = compose()["services"]
    _env, settings = worker_environment(tmp_path)
    mounted = {v.split(":")[1]: v.split(":")[0] for v in services["worker"]["volumes"]}
    subs = load_subscriptions(str(ROOT / mounted[settings.webhooks].removeprefix("./")))
    [endpoint] = subs.endpoints
    sink = services["webhook-sink"]
    assert endpoint.url.startswith(f"http://webhook-sink:{sink['command'][-1]}/")
    assert sink["environment"]["STREAM_SINK_SECRET"] == endpoint.secrets[0]
    subnet = compose()["networks"]["stream"]["ipam"]["config"][0]["subnet"]
    assert settings.webhooks_allow_networks == (subnet,)
    assert ipaddress.ip_network(subnet).is_private


def test_the_image_installs_every_built_in_plugin_with_the_pinned_versions() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for plugin in ("clean", "ner", "dedup", "alerts", "feeds"):
        assert f"./plugins/{plugin}" in dockerfile
    assert "-c constraints.txt" in dockerfile and "constraints.txt" in dockerfile.split("COPY", 2)[1]


def test_the_ingesters_read_a_valid_feeds_file_with_the_workers_settings(tmp_path: Path) -> None:
    from stream.plugins import get_plugin_manager
    from stream.sources.config import load_sources

    services = compose()["services"]
    ingester = services["ingester"]
    assert ingester["command"][0] == "ingest" and ingester["deploy"]["replicas"] >= 2
    mounted = {v.split(":")[1]: v.split(":")[0] for v in ingester["volumes"]}
    feeds = load_sources(str(ROOT / mounted[ingester["command"][1]].removeprefix("./")),
                         get_plugin_manager(Settings(plugins=("feeds", "clean"))).sources())
    assert feeds.entries and not feeds.options["allow_loopback"]
    env = ingester["environment"]
    assert env["STREAM_INGEST_TOKEN_FILE"] == "/run/secrets/ingest_token" and "ingest_token" in ingester["secrets"]
    assert compose()["secrets"]["ingest_token"]["file"].startswith("./deploy/secrets/")
    known = {f"STREAM_{name.upper()}" for name in Settings.__dataclass_fields__}
    assert set(env) <= known, set(env) - known
    assert env["STREAM_APP_ID"] == services["worker"]["environment"]["STREAM_APP_ID"]
