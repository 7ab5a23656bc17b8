"""#20 endpoint formats: Slack incoming-webhook messages and Teams message cards, signed
like every delivery, accepted by a local receiver that checks the chat service's shape."""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from stream.errors import ConfigError
from stream.tools.sink import make_sink
from stream.webhooks.config import Endpoint, parse_subscriptions
from stream.webhooks.delivery import attempt_delivery, payload
from stream.webhooks.formats import (
    TEAMS_MAX_BYTES,
    slack_as_shown,
    slack_message,
    slack_problems,
    teams_as_shown,
    teams_card,
    teams_workflow_as_shown,
    teams_workflow_message,
    teams_workflow_problems,
)
from stream.webhooks.signing import verify

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
ALERT: dict[str, Any] = {
    "alert_id": "al-1", "rule_id": "military-escalation", "article_id": "a1", "severity": "high",
    "created_at": "2026-11-23T10:00:00.000Z", "kind": "keyword", "url": "https://news.example.com/a?x=1&y=2",
    "title": "Troops <mass> at the border & wait",
    "snippet": "Russian troops massed near the border; an invasion was feared by Troops' commanders.",
    "matched": [{"term": "troops", "text": "troops", "start": 8, "end": 14, "field": "text"},
                {"term": "invasion", "text": "invasion", "start": 43, "end": 51, "field": "text"}],
}


def test_a_slack_message_has_the_severity_rule_linked_title_and_bold_terms() -> None:
    message = slack_message(ALERT)
    assert slack_problems(message) == []
    assert message["text"] == "[HIGH] military-escalation: Troops <mass> at the border & wait"
    head, quote = message["blocks"][0]["text"]["text"], message["blocks"][1]["text"]["text"]
    assert "*HIGH*" in head and "`military-escalation`" in head
    # the title linked to the article, with Slack's three control characters escaped
    assert "<https://news.example.com/a?x=1&y=2|Troops &lt;mass&gt; at the border &amp; wait>" in head
    assert quote == "> Russian *troops* massed near the border; an *invasion* was feared by *Troops*' commanders."
    shown = slack_as_shown(message)
    assert "Troops <mass> at the border & wait (https://news.example.com/a?x=1&y=2)" in shown
    assert "**invasion**" in shown


def test_the_slack_checker_is_not_blind() -> None:
    assert slack_problems({}) == ["no_text: a message needs text or blocks"]
    assert slack_problems({"text": "x", "blocks": [{"type": "section"}]})
    assert slack_problems({"text": "x", "blocks": [{"type": "section", "text": {"type": "markdown", "text": "a"}}]})
    assert slack_problems({"text": "x", "blocks": [{"type": "section", "text": {"type": "mrkdwn",
                                                                                 "text": "a" * 3001}}]})
    assert slack_problems({"text": "x", "blocks": [{"type": "divider"}] * 51})
    long = dict(ALERT, snippet="word " * 2000)
    assert slack_problems(slack_message(long)) == []  # our own long message is cut to the limits


def test_a_teams_card_has_the_title_facts_colour_and_a_button() -> None:
    card = teams_card(ALERT)
    assert card["@type"] == "MessageCard" and card["themeColor"] == "F2994A"
    assert card["potentialAction"][0]["targets"][0]["uri"] == ALERT["url"]
    facts = {f["name"]: f["value"] for f in card["sections"][0]["facts"]}
    assert facts == {"Rule": "military-escalation", "Severity": "high", "Article": "a1"}
    assert "**troops**" in card["sections"][0]["text"] and "**invasion**" in card["sections"][0]["text"]
    assert "Open the article" in teams_as_shown(card)


def test_a_teams_workflow_message_is_an_adaptive_card_with_the_title_facts_colour_and_a_button() -> None:
    message = teams_workflow_message(ALERT)
    assert teams_workflow_problems(message) == []
    [attachment] = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    head, title, facts, snippet = card["body"]
    assert head["text"] == "HIGH alert" and head["color"] == "Warning"
    assert title["text"] == "Troops <mass> at the border & wait"  # only markdown's own characters escaped
    assert teams_workflow_message(dict(ALERT, title="a *b* [c]"))["attachments"][0]["content"]["body"][1]["text"] \
        == "a \\*b\\* \\[c\\]"
    assert {f["title"]: f["value"] for f in facts["facts"]} == {
        "Rule": "military-escalation", "Severity": "high", "Article": "a1"}
    assert "**invasion**" in snippet["text"] and "**troops**" in snippet["text"]
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open the article", "url": ALERT["url"]}]
    assert "[Open the article] https://news.example.com/a?x=1&y=2" in teams_workflow_as_shown(message)
    critical = teams_workflow_message(dict(ALERT, severity="critical", url=None))
    assert critical["attachments"][0]["content"]["body"][0]["color"] == "Attention"
    assert "actions" not in critical["attachments"][0]["content"]


def test_the_teams_workflow_checker_is_not_blind() -> None:
    assert teams_workflow_problems(teams_card(ALERT))  # a connector MessageCard: Workflows refuse it
    assert teams_workflow_problems({"type": "message", "attachments": []})
    bad_type = {"type": "message", "attachments": [{"contentType": "application/json", "content": {}}]}
    assert teams_workflow_problems(bad_type) == [
        "attachments[0].contentType must be application/vnd.microsoft.card.adaptive"]
    message = teams_workflow_message(ALERT)
    message["attachments"][0]["content"]["body"].append({"type": "TextBlock"})
    assert teams_workflow_problems(message) == ["attachments[0].content.body[4]: a TextBlock needs text"]
    huge = teams_workflow_message(dict(ALERT, snippet="word " * (TEAMS_MAX_BYTES // 5)))
    assert any("bytes" in p for p in teams_workflow_problems(huge))


def test_a_digest_renders_as_a_list_in_each_format() -> None:
    digest = {"type": "alert.digest", "window_start": "10:00", "window_end": "10:05",
              "alerts": [dict(ALERT, alert_id=f"al-{n}", title=f"Story {n}") for n in range(25)]}
    slack = slack_message(digest)
    assert slack_problems(slack) == [] and "25 alert(s)" in slack["text"]
    assert "and 5 more" in slack_as_shown(slack) and "Story 19" in slack_as_shown(slack)
    assert "- and 5 more" in teams_card(digest)["sections"][0]["text"]
    workflow = teams_workflow_message(digest)
    assert teams_workflow_problems(workflow) == []
    assert "- and 5 more" in workflow["attachments"][0]["content"]["body"][2]["text"]
    standard = orjson.loads(payload(digest))
    assert standard["type"] == "alert.digest" and len(standard["data"]["alerts"]) == 25


def test_an_unknown_format_stops_the_load_with_the_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_subscriptions(f'[[endpoints]]\nid = "x"\nurl = "https://h.example.com/x"\nsecret = "{SECRET}"\n'
                            'format = "discord"\n', "w.toml")
    assert "w.toml:5" in str(info.value)
    assert "format must be one of 'standard', 'slack', 'teams-workflow', 'teams'" in str(info.value)
    [ep] = parse_subscriptions(f'[[endpoints]]\nid = "x"\nurl = "https://h.example.com/x"\nsecret = "{SECRET}"\n'
                               'format = "slack"\n').endpoints
    assert ep.format == "slack"


@pytest.mark.parametrize("fmt", ["slack", "teams-workflow", "teams"])
async def test_a_chat_delivery_is_signed_and_accepted_by_a_receiver_that_checks_the_shape(fmt: str) -> None:
    out = io.StringIO()
    runner = web.AppRunner(make_sink(SECRET, out=out, fmt=fmt))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        endpoint = Endpoint(id="chat", url=f"http://127.0.0.1:{port}/hook", secrets=(SECRET,), format=fmt)
        async with httpx.AsyncClient() as client:
            outcome = await attempt_delivery(client, endpoint, "msg_1", payload(ALERT, fmt), allow_loopback=True)
            bad = await attempt_delivery(client, endpoint, "msg_2", b'{"blocks": [{"type": "section"}]}',
                                         allow_loopback=True)
    finally:
        await runner.cleanup()
    assert outcome.result == "ok", outcome
    assert bad.result == "final" and bad.status == 400  # the receiver refuses what the service would
    shown = out.getvalue()
    assert f"--- msg_1 ({fmt}, signature verified)" in shown
    assert "**invasion**" in shown and ("Troops <mass> at the border & wait" in shown)


def test_the_signature_covers_the_chat_body() -> None:
    import time

    from stream.webhooks.signing import sign

    body, now = payload(ALERT, "slack"), int(time.time())
    assert verify(SECRET, "m", str(now), body, sign([SECRET], "m", now, body))
    assert orjson.loads(body)["blocks"]


def test_the_sink_command_takes_a_format() -> None:
    from click.testing import CliRunner

    from stream.cli import main

    result = CliRunner().invoke(main, ["webhook-sink", "--help"])
    assert "--format [standard|slack|teams-workflow|teams]" in result.output


def test_a_digest_id_is_the_same_for_the_same_window_and_alerts_only() -> None:
    from aiokafka import TopicPartition

    from stream.webhooks.delivery import digest_event

    tp = TopicPartition("alerts", 0)
    alerts = [dict(ALERT, alert_id=f"al-{n}") for n in range(3)]
    one = digest_event("ops", tp, 60_000, 120_000, alerts)
    assert one == digest_event("ops", tp, 60_000, 120_000, [dict(a) for a in alerts])
    assert one["digest_id"] != digest_event("ops", tp, 60_000, 120_000, alerts[:2])["digest_id"]
    assert one["digest_id"] != digest_event("ops", tp, 120_000, 180_000, alerts)["digest_id"]
    assert one["digest_id"] != digest_event("other", tp, 60_000, 120_000, alerts)["digest_id"]
    assert (one["window_start"], one["window_end"], one["count"]) == ("1970-01-01T00:01:00.000Z",
                                                                      "1970-01-01T00:02:00.000Z", 3)
    assert orjson.loads(payload(one))["type"] == "alert.digest"


@pytest.mark.parametrize(("value", "message"), [
    ("{ max = 5 }", "digest must be { minutes = M, max = N }"),
    ("{ minutes = 0 }", "digest minutes must be"),
    ("{ minutes = 5, max = 0 }", "digest max must be"),
    ("5", "digest must be"),
])
def test_a_bad_digest_stops_the_load_with_the_line(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_subscriptions(f'[[endpoints]]\nid = "x"\nurl = "https://h.example.com/x"\nsecret = "{SECRET}"\n'
                            f"digest = {value}\n", "w.toml")
    assert "w.toml:5" in str(info.value) and message in str(info.value), str(info.value)
    [ep] = parse_subscriptions(f'[[endpoints]]\nid = "x"\nurl = "https://h.example.com/x"\nsecret = "{SECRET}"\n'
                               "digest = { minutes = 5 }\n").endpoints
    assert (ep.digest_minutes, ep.digest_max) == (5.0, 50)


def test_standard_bodies_carry_the_schema_version() -> None:
    from stream.records import SCHEMA_VERSION
    from stream.webhooks.formats import render

    alert = {"alert_id": "a1", "rule_id": "r", "kind": "story", "created_at": "2026-12-04T10:00:00.000Z"}
    body = orjson.loads(render("standard", alert))
    assert body == {"type": "alert.created", "timestamp": "2026-12-04T10:00:00.000Z",
                    "schema_version": SCHEMA_VERSION, "data": alert}
    digest = orjson.loads(render("standard", {"type": "alert.digest", "alerts": [alert], "timestamp": "t"}))
    assert digest["schema_version"] == SCHEMA_VERSION and digest["data"] == {"alerts": [alert]}
