"""What an endpoint receives: the body of a delivery in the endpoint's ``format``.

``standard``
    the Standard Webhooks JSON, ``{"type", "timestamp", "data"}`` with the alert in
    ``data`` (the default; ``docs/webhooks.md``).
``slack``
    a Slack incoming-webhook message: ``text`` (the notification's fallback) and
    ``blocks``: a section with the severity, the rule and the title linked to the article,
    then the snippet with the matched terms in bold, then the source and time.
``teams-workflow``
    a Microsoft Teams Workflows message (the "When a Teams webhook request is received"
    trigger): an Adaptive Card with the title, the severity in its colour, the rule,
    severity and article as facts, the snippet with the matched terms in bold, and a
    button that opens the article.  Workflows take Adaptive Cards only.
``teams``
    the same for a Teams connector (Office 365 / Microsoft 365 connectors, which Microsoft
    is retiring): a ``MessageCard``.

Every format is signed the same way (``webhook-id``, ``webhook-timestamp``,
``webhook-signature`` over the body), so a receiver can check any of them.  A digest
(``alert.digest``, several alerts in one delivery) is rendered in each format as a list.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..records import SCHEMA_VERSION, dumps, utcnow

__all__ = ["FORMATS", "SLACK_LIMITS", "TEAMS_MAX_BYTES", "bold_terms", "render", "slack_message", "slack_problems",
           "teams_card", "teams_workflow_message", "teams_workflow_problems"]

FORMATS = ("standard", "slack", "teams-workflow", "teams")
_ICONS = {"low": ":large_blue_circle:", "medium": ":large_yellow_circle:", "high": ":large_orange_circle:",
          "critical": ":red_circle:"}
_COLOURS = {"low": "2F80ED", "medium": "F2C94C", "high": "F2994A", "critical": "EB5757"}
#: Slack's documented limits (api.slack.com/reference/block-kit): blocks per message, text
#: of a section, characters of a message's ``text``.
SLACK_LIMITS = {"blocks": 50, "section_text": 3000, "text": 40000, "context_elements": 10}
#: Alerts listed in one chat message of a digest (the rest are counted).
DIGEST_LINES = 20


def event_type(alert: dict[str, Any]) -> str:
    return "alert.burst" if alert.get("kind") == "burst" else "alert.created"


def render(fmt: str, event: dict[str, Any]) -> bytes:
    """The body of a delivery of ``event``: an alert, or a digest
    (``{"type": "alert.digest", "alerts": [...], ...}``), in format ``fmt``."""
    if fmt == "slack":
        return dumps(slack_message(event))
    if fmt == "teams":
        return dumps(teams_card(event))
    if fmt == "teams-workflow":
        return dumps(teams_workflow_message(event))
    if event.get("type") == "alert.digest":
        return dumps({"type": "alert.digest", "timestamp": event.get("timestamp") or utcnow(),
                      "schema_version": SCHEMA_VERSION,
                      "data": {k: v for k, v in event.items() if k not in ("type", "timestamp")}})
    return dumps({"type": event_type(event), "timestamp": event.get("created_at") or utcnow(),
                  "schema_version": SCHEMA_VERSION, "data": event})


def bold_terms(snippet: str, matched: list[dict[str, Any]], mark: Callable[[str], str],
               escape: Callable[[str], str]) -> str:
    """``snippet`` escaped with ``escape``, each matched word or phrase (as it appears in
    the article, case aside, on word boundaries) wrapped by ``mark``."""
    words = sorted({str(m.get("text", "")) for m in matched if str(m.get("text", "")).strip()}, key=len, reverse=True)
    if not words:
        return escape(snippet)
    pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.IGNORECASE)
    out, last = [], 0
    for found in pattern.finditer(snippet):
        out.append(escape(snippet[last:found.start()]))
        out.append(mark(escape(found.group())))
        last = found.end()
    out.append(escape(snippet[last:]))
    return "".join(out)


# -- Slack ------------------------------------------------------------------------------------

def _slack_escape(text: str) -> str:
    """Slack's three control characters (api.slack.com/reference/surfaces/formatting)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(url: str | None, label: str) -> str:
    label = _slack_escape(label).replace("|", "¦")
    if not url:
        return f"*{label}*"
    return f"<{url.replace('>', '%3E').replace('|', '%7C').replace(' ', '%20')}|{label}>"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _slack_alert_lines(alert: dict[str, Any]) -> tuple[str, str]:
    severity = str(alert.get("severity", "low"))
    kind = "burst" if alert.get("kind") == "burst" else "alert"
    rule = _slack_escape(str(alert.get("rule_id")))
    head = (f"{_ICONS.get(severity, '')} *{severity.upper()}* {kind} · rule `{rule}`"
            f"\n{_slack_link(alert.get('url'), str(alert.get('title') or alert.get('article_id') or 'article'))}")
    snippet = bold_terms(str(alert.get("snippet") or ""), list(alert.get("matched") or []),
                         lambda s: f"*{s}*", _slack_escape)
    return head, snippet


def slack_message(event: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message for an alert or a digest."""
    if event.get("type") == "alert.digest":
        alerts = list(event.get("alerts") or [])
        lines = []
        for alert in alerts[:DIGEST_LINES]:
            severity = str(alert.get("severity", "low"))
            rule = _slack_escape(str(alert.get("rule_id")))
            lines.append(f"{_ICONS.get(severity, '')} *{severity.upper()}* `{rule}` "
                         f"{_slack_link(alert.get('url'), str(alert.get('title') or alert.get('article_id')))}")
        more = len(alerts) - len(lines)
        summary = (f"{len(alerts)} alert(s) from {event.get('window_start', '?')} to "
                   f"{event.get('window_end', '?')}")
        blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": _cut(
            f"*stream digest* · {_slack_escape(summary)}", SLACK_LIMITS["section_text"])}}]
        chunk: list[str] = []
        for line in lines:  # sections of at most 3,000 characters
            if chunk and len("\n".join([*chunk, line])) > SLACK_LIMITS["section_text"]:
                blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(chunk)}})
                chunk = []
            chunk.append(_cut(line, SLACK_LIMITS["section_text"]))
        if chunk:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(chunk)}})
        if more > 0:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"and {more} more"}]})
        return {"text": _cut(f"stream digest: {summary}", SLACK_LIMITS["text"]), "blocks": blocks}
    head, snippet = _slack_alert_lines(event)
    severity = str(event.get("severity", "low"))
    fallback = f"[{severity.upper()}] {event.get('rule_id')}: {event.get('title') or event.get('article_id')}"
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": _cut(head, SLACK_LIMITS["section_text"])}}]
    if snippet:
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": _cut("> " + snippet, SLACK_LIMITS["section_text"])}})
    context = [f"article `{_slack_escape(str(event.get('article_id')))}`"]
    if event.get("created_at"):
        context.append(_slack_escape(str(event["created_at"])))
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]})
    return {"text": _cut(fallback, SLACK_LIMITS["text"]), "blocks": blocks}


def slack_problems(message: Any) -> list[str]:
    """What Slack would refuse in an incoming-webhook ``message`` (the shape of its Block
    Kit reference: ``text`` or ``blocks``; sections with text or fields; mrkdwn or
    plain_text objects; context elements; the size limits).  Empty: it is valid."""
    problems: list[str] = []
    if not isinstance(message, dict):
        return ["the message is not a JSON object"]
    text, blocks = message.get("text"), message.get("blocks")
    if not (isinstance(text, str) and text.strip()) and not blocks:
        problems.append("no_text: a message needs text or blocks")
    if isinstance(text, str) and len(text) > SLACK_LIMITS["text"]:
        problems.append(f"text is over {SLACK_LIMITS['text']} characters")
    if blocks is None:
        return problems
    if not isinstance(blocks, list) or len(blocks) > SLACK_LIMITS["blocks"]:
        return [*problems, f"invalid_blocks: blocks must be a list of at most {SLACK_LIMITS['blocks']}"]

    def text_object(obj: Any, where: str, limit: int) -> None:
        if not (isinstance(obj, dict) and obj.get("type") in ("mrkdwn", "plain_text")
                and isinstance(obj.get("text"), str) and obj["text"]):
            problems.append(f"invalid_blocks: {where} must be a text object (mrkdwn or plain_text, non-empty)")
        elif len(obj["text"]) > limit:
            problems.append(f"invalid_blocks: {where} is over {limit} characters")

    for n, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append(f"invalid_blocks: blocks[{n}] (section) needs text or fields")
            if "text" in block:
                text_object(block["text"], f"blocks[{n}].text", SLACK_LIMITS["section_text"])
        elif kind == "context":
            elements = block.get("elements")
            if not (isinstance(elements, list) and 0 < len(elements) <= SLACK_LIMITS["context_elements"]):
                problems.append(f"invalid_blocks: blocks[{n}] (context) needs 1 to 10 elements")
            else:
                for e, element in enumerate(elements):
                    text_object(element, f"blocks[{n}].elements[{e}]", SLACK_LIMITS["section_text"])
        elif kind == "header":
            text = block.get("text")
            if not (isinstance(text, dict) and text.get("type") == "plain_text"):
                problems.append(f"invalid_blocks: blocks[{n}] (header) needs plain_text")
            else:
                text_object(text, f"blocks[{n}].text", 150)
        elif kind != "divider":
            problems.append(f"invalid_blocks: blocks[{n}] has an unknown type {kind!r}")
    return problems


def slack_as_shown(message: dict[str, Any]) -> str:
    """Roughly what a Slack client shows for ``message``: mrkdwn links as ``label (url)``,
    bold as ``**bold**``, entities decoded."""
    lines = []
    for block in message.get("blocks") or [{"type": "section", "text": {"text": message.get("text", "")}}]:
        texts = [block["text"]["text"]] if "text" in block else [e["text"] for e in block.get("elements", [])]
        for text in texts:
            text = re.sub(r"<([^|>]+)\|([^>]+)>", r"\2 (\1)", text)
            text = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", r"**\1**", text)
            lines.append(text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    return "\n".join(lines)


# -- Teams ------------------------------------------------------------------------------------

def _md_escape(text: str) -> str:
    return re.sub(r"([\\*_`\[\]<>#])", r"\\\1", text)


def _worst(alerts: list[dict[str, Any]]) -> str:
    """The highest severity of a digest's alerts."""
    return max((str(a.get("severity", "low")) for a in alerts), default="low",
               key=lambda s: list(_COLOURS).index(s) if s in _COLOURS else 0)


def _digest_rows(alerts: list[dict[str, Any]], escape: Callable[[str], str]) -> list[str]:
    """A digest's alerts as markdown list items (the first ``DIGEST_LINES``, then a count)."""
    rows = [f"- **{str(a.get('severity', 'low')).upper()}** {escape(str(a.get('rule_id')))}: "
            + (f"[{escape(str(a.get('title') or a.get('article_id')))}]({a['url']})" if a.get("url")
               else escape(str(a.get("title") or a.get("article_id"))))
            for a in alerts[:DIGEST_LINES]]
    if len(alerts) > DIGEST_LINES:
        rows.append(f"- and {len(alerts) - DIGEST_LINES} more")
    return rows


def teams_card(event: dict[str, Any]) -> dict[str, Any]:
    """A Teams connector ``MessageCard`` for an alert or a digest."""
    if event.get("type") == "alert.digest":
        alerts = list(event.get("alerts") or [])
        worst, rows = _worst(alerts), _digest_rows(alerts, _md_escape)
        summary = f"stream digest: {len(alerts)} alert(s)"
        return {"@type": "MessageCard", "@context": "https://schema.org/extensions", "summary": summary,
                "themeColor": _COLOURS.get(worst, _COLOURS["low"]), "title": summary,
                "sections": [{"activitySubtitle": f"{event.get('window_start', '?')} to {event.get('window_end', '?')}",
                              "text": "\n".join(rows)}]}
    severity = str(event.get("severity", "low"))
    title = str(event.get("title") or event.get("article_id") or "article")
    snippet = bold_terms(str(event.get("snippet") or ""), list(event.get("matched") or []),
                         lambda s: f"**{s}**", _md_escape)
    card: dict[str, Any] = {
        "@type": "MessageCard", "@context": "https://schema.org/extensions",
        "summary": f"[{severity.upper()}] {event.get('rule_id')}: {title}",
        "themeColor": _COLOURS.get(severity, _COLOURS["low"]),
        "title": title,
        "sections": [{
            "activityTitle": f"{severity.upper()} {'burst' if event.get('kind') == 'burst' else 'alert'}",
            "facts": [{"name": "Rule", "value": str(event.get("rule_id"))},
                      {"name": "Severity", "value": severity},
                      {"name": "Article", "value": str(event.get("article_id"))}],
            "text": snippet,
        }],
    }
    if event.get("url"):
        card["potentialAction"] = [{"@type": "OpenUri", "name": "Open the article",
                                    "targets": [{"os": "default", "uri": event["url"]}]}]
    return card


def teams_as_shown(card: dict[str, Any]) -> str:
    """Roughly what Teams shows for ``card``."""
    lines = [f"# {card.get('title', '')}"]
    for section in card.get("sections", []):
        for key in ("activityTitle", "activitySubtitle"):
            if section.get(key):
                lines.append(section[key])
        lines += [f"{f['name']}: {f['value']}" for f in section.get("facts", [])]
        if section.get("text"):
            lines.append(section["text"])
    for action in card.get("potentialAction", []):
        lines.append(f"[{action.get('name')}] {action['targets'][0]['uri']}")
    return "\n".join(lines)


# -- Teams Workflows (Adaptive Cards) ----------------------------------------------------------

#: Teams refuses a message over about 28 KB (learn.microsoft.com, "Send messages using
#: incoming webhooks": message size limit).
TEAMS_MAX_BYTES = 28_000
_CARD_COLOURS = {"low": "Accent", "medium": "Warning", "high": "Warning", "critical": "Attention"}
_ADAPTIVE = "application/vnd.microsoft.card.adaptive"


def _card_escape(text: str) -> str:
    """Escape what Adaptive Cards' markdown subset acts on (emphasis, links, code): other
    characters (``<``, ``&``, ``#``) are shown as they are."""
    return re.sub(r"([\\*_`\[\]])", r"\\\1", text)


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def teams_workflow_message(event: dict[str, Any]) -> dict[str, Any]:
    """The body a Teams Workflows webhook takes: ``{"type": "message", "attachments":
    [{"contentType": "application/vnd.microsoft.card.adaptive", "content": CARD}]}`` with an
    Adaptive Card (version 1.4) for an alert or a digest."""
    actions: list[dict[str, Any]] = []
    if event.get("type") == "alert.digest":
        alerts = list(event.get("alerts") or [])
        worst, rows = _worst(alerts), _digest_rows(alerts, _card_escape)
        body = [_text(f"stream digest: {len(alerts)} alert(s)", weight="Bolder", size="Medium",
                      color=_CARD_COLOURS.get(worst, "Accent")),
                _text(f"{event.get('window_start', '?')} to {event.get('window_end', '?')}", isSubtle=True,
                      spacing="None"),
                _text("\n".join(rows))]
    else:
        severity = str(event.get("severity", "low"))
        title = str(event.get("title") or event.get("article_id") or "article")
        snippet = bold_terms(str(event.get("snippet") or ""), list(event.get("matched") or []),
                             lambda s: f"**{s}**", _card_escape)
        kind = "burst" if event.get("kind") == "burst" else "alert"
        body = [_text(f"{severity.upper()} {kind}", weight="Bolder", color=_CARD_COLOURS.get(severity, "Accent")),
                _text(_card_escape(title), weight="Bolder", size="Medium", spacing="Small"),
                {"type": "FactSet", "facts": [{"title": "Rule", "value": str(event.get("rule_id"))},
                                              {"title": "Severity", "value": severity},
                                              {"title": "Article", "value": str(event.get("article_id"))}]},
                _text(snippet)]
        if event.get("url"):
            actions.append({"type": "Action.OpenUrl", "title": "Open the article", "url": event["url"]})
    card: dict[str, Any] = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                            "version": "1.4", "body": body}
    if actions:
        card["actions"] = actions
    return {"type": "message", "attachments": [{"contentType": _ADAPTIVE, "contentUrl": None, "content": card}]}


def teams_workflow_problems(message: Any) -> list[str]:
    """Why a Teams Workflows webhook would not post ``message`` (empty when it would): the
    envelope, an Adaptive Card with a version and a body of elements, the size limit."""
    if not isinstance(message, dict) or message.get("type") != "message":
        return ['the body must be {"type": "message", "attachments": [...]} (a MessageCard is not taken)']
    attachments = message.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return ["attachments: a list with one Adaptive Card is needed"]
    problems = []
    for n, attachment in enumerate(attachments):
        where = f"attachments[{n}]"
        if not isinstance(attachment, dict) or attachment.get("contentType") != _ADAPTIVE:
            problems.append(f"{where}.contentType must be {_ADAPTIVE}")
            continue
        card = attachment.get("content")
        if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
            problems.append(f"{where}.content must be an AdaptiveCard")
            continue
        if not isinstance(card.get("version"), str):
            problems.append(f"{where}.content.version is missing")
        elements = card.get("body")
        if not isinstance(elements, list) or not elements:
            problems.append(f"{where}.content.body must be a list of elements")
            continue
        for k, element in enumerate(elements):
            if not isinstance(element, dict) or not isinstance(element.get("type"), str):
                problems.append(f"{where}.content.body[{k}] has no type")
            elif element["type"] == "TextBlock" and not isinstance(element.get("text"), str):
                problems.append(f"{where}.content.body[{k}]: a TextBlock needs text")
    size = len(dumps(message))
    if size > TEAMS_MAX_BYTES:
        problems.append(f"the message is {size} bytes; Teams takes at most about {TEAMS_MAX_BYTES}")
    return problems


def teams_workflow_as_shown(message: dict[str, Any]) -> str:
    """Roughly what Teams shows for a Workflows ``message``."""
    lines: list[str] = []
    for attachment in message.get("attachments", []):
        card = attachment.get("content") or {}
        for element in card.get("body", []):
            if element.get("type") == "TextBlock":
                lines.append(("# " if element.get("size") == "Medium" else "") + element["text"])
            elif element.get("type") == "FactSet":
                lines += [f"{f['title']}: {f['value']}" for f in element.get("facts", [])]
        for action in card.get("actions", []):
            lines.append(f"[{action.get('title')}] {action.get('url')}")
    return "\n".join(lines)
