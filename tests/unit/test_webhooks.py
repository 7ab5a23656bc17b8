"""Webhook signing, subscriptions, target checks, and single attempts against real HTTP
servers on localhost."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from stream.errors import ConfigError
from stream.webhooks.config import Endpoint, load_subscriptions, parse_subscriptions
from stream.webhooks.delivery import attempt_delivery, payload, webhook_id
from stream.webhooks.errors import WebhookError
from stream.webhooks.safety import resolve_target
from stream.webhooks.signing import sign, verify

from ..webhook_server import Receiver

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
OLD = "whsec_" + base64.b64encode(b"old-secret-old-secret-old-secret").decode()
ALERT = {"alert_id": "al-1", "rule_id": "military-escalation", "article_id": "a1", "severity": "high",
         "created_at": "2026-11-23T10:00:00.000Z", "kind": "keyword", "snippet": "Troops moved."}


def endpoint(url: str, **kw: object) -> Endpoint:
    return Endpoint(id="ops", url=url, secrets=(SECRET,), **kw)  # type: ignore[arg-type]


def test_signatures_verify_with_the_independent_standardwebhooks_library() -> None:
    import time

    body = payload(ALERT)
    msg_id, ts = webhook_id("al-1", "ops"), int(time.time())
    header = sign([SECRET, OLD], msg_id, ts, body)
    assert header.count("v1,") == 2  # one per secret, for rotation
    for secret in (SECRET, OLD):
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": header}
        data = Webhook(secret).verify(body, headers)
        assert data["data"]["alert_id"] == "al-1" and data["type"] == "alert.created"


def test_our_verify_checks_signature_and_timestamp() -> None:
    import time

    body, now = b'{"x":1}', int(time.time())
    header = sign([SECRET], "msg_1", now, body)
    assert verify(SECRET, "msg_1", str(now), body, header)
    assert not verify(SECRET, "msg_1", str(now), body + b" ", header)
    assert not verify(SECRET, "msg_1", str(now - 3600), body, sign([SECRET], "msg_1", now - 3600, body))


def test_the_webhook_id_is_stable_per_alert_and_endpoint() -> None:
    assert webhook_id("al-1", "ops") == webhook_id("al-1", "ops") != webhook_id("al-1", "other")


def test_a_burst_alert_has_its_own_event_type() -> None:
    assert orjson.loads(payload({**ALERT, "kind": "burst"}))["type"] == "alert.burst"


def test_subscriptions_are_validated_with_file_line_and_fix_and_no_secret_shown(tmp_path: Path) -> None:
    good = parse_subscriptions(f'[[endpoints]]\nid = "ops"\nurl = "https://h.example.com/x"\nsecret = "{SECRET}"\n'
                               'rules = ["military-escalation"]\nmin_severity = "medium"\n')
    [ep] = good.endpoints
    assert ep.wants(ALERT) and not ep.wants({**ALERT, "severity": "low"})
    assert not ep.wants({**ALERT, "rule_id": "sanctions"})
    assert SECRET not in repr(ep)
    with pytest.raises(ConfigError, match=r"w.toml:3: endpoint 'x': only http and https URLs are allowed"):
        parse_subscriptions('[[endpoints]]\nid = "x"\nurl = "ftp://h/x"\nsecret = "whsec_AAAA"\n', "w.toml")
    with pytest.raises(ConfigError) as info:
        parse_subscriptions('[[endpoints]]\nid = "x"\nurl = "https://h/x"\nsecret = "not-a-secret"\n', "w.toml")
    assert "starts with 'whsec_'" in str(info.value) and "not-a-secret" not in str(info.value)


@pytest.mark.parametrize("url", ["http://10.0.0.8/x", "http://192.168.1.1/x", "http://169.254.169.254/latest",
                                 "http://100.64.0.1/x", "http://[fd00::1]/x", "http://[::ffff:10.0.0.1]/x",
                                 "http://127.0.0.1:8080/x", "http://localhost/x",
                                 # 6to4 addresses embed an IPv4 address: 127.0.0.1, 10.0.0.1
                                 "http://[2002:7f00:1::1]/x", "http://[2002:a00:1::1]/x"])
async def test_private_and_local_targets_are_refused(url: str) -> None:
    with pytest.raises(WebhookError, match="refused"):
        await resolve_target(url, allow_loopback=False)


async def test_a_6to4_address_of_a_public_ipv4_address_is_allowed() -> None:
    """2002:5db8:d822::1 embeds 93.184.216.34: judged by it, as public."""
    target = await resolve_target("http://[2002:5db8:d822::1]/x", allow_loopback=False)
    assert target.address == "2002:5db8:d822::1"


async def test_loopback_is_allowed_only_when_asked_and_the_checked_address_is_used() -> None:
    target = await resolve_target("http://localhost:8099/hook?a=1", allow_loopback=True)
    assert target.address in ("127.0.0.1", "::1") and target.host == "localhost"
    assert target.connect_url.endswith(":8099/hook?a=1")
    with pytest.raises(WebhookError, match=r"10\.1\.2\.3, a private or reserved address: refused"):
        await resolve_target("http://10.1.2.3/", allow_loopback=True)


@pytest.mark.parametrize(("status", "result"), [
    (200, "ok"), (204, "ok"), (500, "retry"), (503, "retry"), (408, "retry"), (429, "retry"),
    (400, "final"), (404, "final"), (301, "final"), (410, "gone"),
])
async def test_one_attempt_against_a_real_server(status: int, result: str) -> None:
    server = Receiver(statuses=[status], headers={"Retry-After": "7", "Location": "http://127.0.0.1:1/"}).start()
    try:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            outcome = await attempt_delivery(client, endpoint(server.url), "msg_1", payload(ALERT), allow_loopback=True)
    finally:
        server.stop()
    assert (outcome.result, outcome.status) == (result, status)
    if status == 429:
        assert outcome.retry_after == 7
    [req] = server.requests  # a redirect is never followed
    assert req.headers["webhook-id"] == "msg_1" and req.headers["Host"] == f"127.0.0.1:{server.port}"
    assert verify(SECRET, "msg_1", req.headers["webhook-timestamp"], req.body, req.headers["webhook-signature"])


async def test_a_timeout_and_a_refused_connection_are_retried() -> None:
    server = Receiver(delay=2).start()
    try:
        async with httpx.AsyncClient() as client:
            slow = await attempt_delivery(client, endpoint(server.url, timeout=0.3), "m", b"{}", allow_loopback=True)
            dead = await attempt_delivery(client, endpoint("http://127.0.0.1:9/x"), "m", b"{}", allow_loopback=True)
    finally:
        server.stop()
    assert (slow.result, slow.error) == ("retry", "timeout")
    assert dead.result == "retry" and dead.error and dead.error.startswith("connection error")


async def test_a_private_network_the_operator_trusts_is_allowed_and_only_that_one() -> None:
    from stream.webhooks.errors import WebhookError
    from stream.webhooks.safety import parse_networks, resolve_target

    trusted = parse_networks(["10.20.0.0/16"])
    target = await resolve_target("http://10.20.3.4:8080/hook", allow_loopback=False, allow_networks=trusted)
    assert target.address == "10.20.3.4"
    for url in ("http://10.21.0.1/hook", "http://192.168.1.1/hook", "http://169.254.169.254/latest"):
        with pytest.raises(WebhookError, match="refused"):
            await resolve_target(url, allow_loopback=False, allow_networks=trusted)
    with pytest.raises(WebhookError, match="webhooks_allow_networks"):
        await resolve_target("http://10.20.3.4/hook", allow_loopback=False)


def test_an_invalid_trusted_network_stops_at_start_with_the_setting() -> None:
    from stream.errors import ConfigError
    from stream.settings import load_settings

    with pytest.raises(ConfigError, match=r"STREAM_WEBHOOKS_ALLOW_NETWORKS.*'10\.20\.0\.0/33'"):
        load_settings(None, environ={"STREAM_WEBHOOKS_ALLOW_NETWORKS": "10.20.0.0/33"})


@pytest.mark.asyncio
async def test_target_cache_reuses_a_checked_target_until_its_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    from stream.webhooks.safety import TargetCache

    loop = asyncio.get_running_loop()
    calls: list[str] = []
    real = loop.getaddrinfo

    async def counting(host: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(host)
        return await real(host, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", counting)
    now = [100.0]
    cache = TargetCache(ttl=30, clock=lambda: now[0])
    first = await cache.resolve("http://localhost:8099/hook", allow_loopback=True)
    again = await cache.resolve("http://localhost:8099/hook", allow_loopback=True)
    assert again is first and calls == ["localhost"]
    now[0] += 31  # past the TTL: resolved and checked again
    await cache.resolve("http://localhost:8099/hook", allow_loopback=True)
    assert calls == ["localhost", "localhost"]
    # A refusal is not cached, and a cached target of one policy does not serve another.
    with pytest.raises(WebhookError, match="loopback"):
        await cache.resolve("http://localhost:8099/hook", allow_loopback=False)
    with pytest.raises(WebhookError, match="private"):
        await cache.resolve("http://10.1.2.3/", allow_loopback=True)
    # An address literal is checked without the resolver.
    target = await cache.resolve("http://127.0.0.1:8099/x", allow_loopback=True)
    assert target.address == "127.0.0.1" and calls == ["localhost", "localhost", "localhost"]


def test_an_endpoint_secret_can_come_from_a_file_relative_to_the_subscriptions(tmp_path: Path) -> None:
    other = "whsec_" + base64.b64encode(b"another-secret-0123456789abcdef!").decode()
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "ops").write_text(f"# newest first\n{SECRET}\n\n{other}\n")
    subs = tmp_path / "webhooks.toml"
    subs.write_text('[[endpoints]]\nid = "ops"\nurl = "https://h.example.com/x"\nsecret_file = "secrets/ops"\n')
    [ep] = load_subscriptions(subs).endpoints
    assert ep.secrets == (SECRET, other) and SECRET not in repr(ep)
    subs.write_text('[[endpoints]]\nid = "ops"\nurl = "https://h.example.com/x"\nsecret_file = "missing"\n')
    with pytest.raises(ConfigError, match=rf"{subs}:4: endpoint 'ops': secret_file: cannot read .*missing"):
        load_subscriptions(subs)
    subs.write_text(f'[[endpoints]]\nid = "ops"\nurl = "https://h.example.com/x"\nsecret = "{SECRET}"\n'
                    'secret_file = "secrets/ops"\n')
    with pytest.raises(ConfigError, match="give one of secret, secrets and secret_file, not secret and secret_file"):
        load_subscriptions(subs)


def test_an_endpoint_url_can_come_from_a_file_and_is_then_never_shown(tmp_path: Path) -> None:
    """A Slack or Teams incoming-webhook URL is a secret itself."""
    url = "https://hooks.slack.com/services/T000/B000/very-secret-token"
    (tmp_path / "slack-url").write_text(f"# the channel's incoming webhook\n{url}\n")
    subs = tmp_path / "webhooks.toml"
    subs.write_text(f'[[endpoints]]\nid = "chat"\nurl_file = "slack-url"\nformat = "slack"\nsecret = "{SECRET}"\n')
    [ep] = load_subscriptions(subs).endpoints
    assert ep.url == url and ep.url_secret and "very-secret-token" not in repr(ep)
    (tmp_path / "slack-url").write_text("ftp://hooks.example.com/x\n")
    with pytest.raises(ConfigError, match="only http and https URLs are allowed") as info:
        load_subscriptions(subs)
    assert "hooks.example.com" not in str(info.value)
    subs.write_text(f'[[endpoints]]\nid = "chat"\nurl = "{url}"\nurl_file = "slack-url"\nsecret = "{SECRET}"\n')
    with pytest.raises(ConfigError, match="give url or url_file, not both"):
        load_subscriptions(subs)
