"""The Kafka security settings: validated at start with file and line, turned into the
options of aiokafka and faust, never shown."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from stream.errors import ConfigError
from stream.ops.health import Health
from stream.ops.metrics import WorkerMetrics
from stream.ops.web import _app
from stream.runtime.kafka import replication_for
from stream.settings import load_settings
from stream.tools.broker import make_certificates


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tls")
    make_certificates(directory)
    return directory


def settings_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stream.toml"
    path.write_text(text)
    return path


def test_sasl_ssl_settings_become_aiokafka_and_faust_options(tmp_path: Path, tls: Path) -> None:
    (tmp_path / "pw").write_text("s3cret-pw\nignored second line\n")
    path = settings_file(tmp_path, f'security_protocol = "sasl_ssl"\nsasl_mechanism = "scram-sha-512"\n'
                                   f'sasl_username = "alice"\nsasl_password_file = "{tmp_path / "pw"}"\n'
                                   f'ssl_cafile = "{tls / "ca.pem"}"\n')
    settings = load_settings(path, environ={})
    options = settings.kafka.options()
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "alice" and options["sasl_plain_password"] == "s3cret-pw"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    credentials = settings.security.faust_credentials()
    assert (credentials.protocol.value, credentials.mechanism.value) == ("SASL_SSL", "SCRAM-SHA-512")
    assert credentials.ssl_context is context
    for shown in (repr(settings), repr(settings.kafka), repr(credentials), settings.security.describe()):
        assert "s3cret-pw" not in shown


def test_mutual_tls_loads_the_client_certificate(tmp_path: Path, tls: Path) -> None:
    settings = load_settings(None, environ={
        "STREAM_SECURITY_PROTOCOL": "SSL", "STREAM_SSL_CAFILE": str(tls / "ca.pem"),
        "STREAM_SSL_CERTFILE": str(tls / "client.pem"), "STREAM_SSL_KEYFILE": str(tls / "client.key")})
    options = settings.kafka.options()
    assert options["security_protocol"] == "SSL" and "sasl_mechanism" not in options
    assert type(settings.security.faust_credentials()).__name__ == "SSLCredentials"


def test_plaintext_is_the_default_and_has_no_tls_or_sasl_options() -> None:
    settings = load_settings(None, environ={})
    assert settings.kafka.options() == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}
    assert settings.security.faust_credentials() is None


@pytest.mark.parametrize(("text", "line", "message"), [
    ('broker = "k:9092"\nsecurity_protocol = "SASL_SSL"\n', 2, "needs sasl_username"),
    ('security_protocol = "SASL_PLAINTEXT"\nsasl_username = "a"\n', 1, "needs sasl_password"),
    ('security_protocol = "TLS"\n', 1, "must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
    ('security_protocol = "SASL_SSL"\nsasl_mechanism = "GSSAPI"\n', 2, "must be one of PLAIN, SCRAM-SHA-256"),
    ('sasl_username = "a"\n', 1, "does not use SASL"),
    ('ssl_cafile = "{ca}"\n', 1, "does not use TLS"),
    ('security_protocol = "SSL"\nssl_cafile = "/nonexistent/ca.pem"\n', 2, "no such file"),
    ('security_protocol = "SSL"\nssl_cafile = "{bad}"\n', 2, "cannot be loaded"),
    ('security_protocol = "SSL"\n\nssl_keyfile = "{key}"\n', 3, "without ssl_certfile"),
])
def test_inconsistent_security_settings_name_the_file_line_and_fix(
        tmp_path: Path, tls: Path, text: str, line: int, message: str) -> None:
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    path = settings_file(tmp_path, text.format(ca=tls / "ca.pem", bad=tmp_path / "bad.pem", key=tls / "client.key"))
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert err.value.path == str(path) and err.value.line == line, str(err.value)
    assert message in str(err.value)


def test_an_environment_variable_error_names_the_variable(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("x\n")
    with pytest.raises(ConfigError, match="STREAM_SASL_PASSWORD_FILE: both sasl_password and sasl_password_file"):
        load_settings(None, environ={"STREAM_SECURITY_PROTOCOL": "SASL_SSL", "STREAM_SASL_USERNAME": "a",
                                     "STREAM_SASL_PASSWORD": "p", "STREAM_SASL_PASSWORD_FILE": str(tmp_path / "pw")})


@pytest.mark.parametrize(("brokers", "expected"), [(1, (1, 1)), (2, (2, 1)), (3, (3, 2)), (5, (3, 2))])
def test_replication_follows_the_cluster_size(brokers: int, expected: tuple[int, int]) -> None:
    assert replication_for(brokers) == expected
    assert replication_for(brokers, 2, 2) == (2, 2)


async def test_the_web_token_guards_the_dashboard_and_its_data_but_not_metrics_or_health() -> None:
    client = TestClient(TestServer(_app(WorkerMetrics(), Health(WorkerMetrics(), 60), token="t0ken")))
    await client.start_server()
    try:
        for path in ("/", "/api/dashboard"):
            assert (await client.get(path)).status == 401
            assert (await client.get(path, headers={"Authorization": "Bearer nope"})).status == 401
            assert (await client.get(path, headers={"Authorization": "Bearer t0ken"})).status == 200
            assert (await client.get(path + "?token=t0ken")).status == 200
        assert (await client.get("/metrics")).status == 200
        assert (await client.get("/health/ready")).status in (200, 503)
        assert "t0ken" not in repr(load_settings(None, environ={"STREAM_WEB_TOKEN": "t0ken"}))
    finally:
        await client.close()
