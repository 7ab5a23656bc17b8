"""The subscriptions file (``STREAM_WEBHOOKS``), see ``docs/webhooks.md``::

    [delivery]
    schedule = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]   # seconds before each attempt
    disable_after_hours = 120
    max_in_flight = 10000           # jobs under way, and retries waiting, per dispatcher

    [[endpoints]]
    id = "ops-team"
    url = "https://hooks.example.com/stream"   # or url_file = "/run/secrets/slack-url"
    secret = "whsec_..."            # or secrets = ["whsec_new", "whsec_old"],
                                    # or secret_file = "/run/secrets/ops-team" (a secret a line)
    rules = ["military-escalation"] # empty or absent: every rule
    min_severity = "medium"
    headers = { "X-Team" = "ops" }
    timeout = 10                    # seconds
    concurrency = 4                 # deliveries in flight to this endpoint
    format = "standard"             # or "slack" (incoming webhook), "teams-workflow" (Adaptive Card), "teams"
    rate = 5                        # at most 5 deliveries a second (default: no limit)
    digest = { minutes = 5, max = 50 }   # one delivery per 5 minutes with their alerts
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..toml import entry_key_line, line_containing, parse_toml, read_toml
from .formats import FORMATS
from .safety import check_url
from .signing import secret_key

__all__ = ["DEFAULT_SCHEDULE", "SEVERITIES", "Endpoint", "Subscriptions", "load_subscriptions", "parse_subscriptions"]

#: Seconds to wait before each attempt: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
#: (the schedule of the established webhook services).
DEFAULT_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
SEVERITIES = ("low", "medium", "high", "critical")
_KEYS = {"id", "url", "url_file", "secret", "secrets", "secret_file", "rules", "min_severity", "headers", "timeout",
         "concurrency", "format", "rate", "digest"}
_FORBIDDEN_HEADERS = {"host", "content-length", "webhook-id", "webhook-timestamp", "webhook-signature",
                      "content-type"}


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    secrets: tuple[str, ...]
    rules: tuple[str, ...] = ()
    min_severity: str = "low"
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 10.0
    concurrency: int = 4
    #: the body's shape (``formats.FORMATS``): Standard Webhooks JSON, Slack, Teams
    format: str = "standard"
    #: deliveries per second at most (a token bucket, ``pace.py``); None: no limit
    rate: float | None = None
    #: one delivery per window of this many minutes with the window's alerts; None: one per alert
    digest_minutes: float | None = None
    #: alerts per digest delivery at most (a window with more is sent in several)
    digest_max: int = 50
    #: the URL came from ``url_file``: it is a secret (a Slack or Teams incoming webhook)
    url_secret: bool = False

    def wants(self, alert: dict[str, Any]) -> bool:
        """Whether this endpoint subscribed to ``alert`` (its rule and severity)."""
        if self.rules and alert.get("rule_id") not in self.rules:
            return False
        severity = alert.get("severity", "low")
        rank = SEVERITIES.index(severity) if severity in SEVERITIES else 0
        return rank >= SEVERITIES.index(self.min_severity)

    def __repr__(self) -> str:  # never show secrets
        url = "<from url_file>" if self.url_secret else repr(self.url)
        return f"Endpoint(id={self.id!r}, url={url}, secrets=<{len(self.secrets)} hidden>)"


@dataclass(frozen=True)
class Subscriptions:
    endpoints: tuple[Endpoint, ...]
    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    disable_after_hours: float = 120.0
    #: Jobs a dispatcher runs at once (deliveries, and retries waiting for their time); at
    #: this bound it stops reading until a quarter of them are done.
    max_in_flight: int = 10_000
    source: str | None = field(default=None, compare=False)

    def endpoint(self, endpoint_id: str) -> Endpoint | None:
        return next((e for e in self.endpoints if e.id == endpoint_id), None)


def _lines_of(value: Any, base: Path | None, key: str, what: str) -> list[str]:
    """The lines of the file ``key`` names (``secret_file``: one secret a line, the newest
    first during a rotation; ``url_file``: the URL), blank lines and lines starting with
    ``#`` skipped.  A relative path is relative to the subscriptions file."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be the path of a file holding {what}")
    file = Path(value)
    if not file.is_absolute() and base is not None:
        file = base / file
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{key}: cannot read {file}: {exc.strerror}") from None
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise ValueError(f"{key}: {file} holds no {what.removeprefix('a ')}")
    return lines


def _key_line(text: str, start: int | None, message: str) -> int | None:
    """The line of the key the message is about, inside the endpoint that starts near ``start``."""
    if start is None:
        return None
    keys = {"url_file": "url_file", "only http": "url", "the URL": "url", "credentials": "url",
            "secret_file": "secret_file",
            "secret": "secret", "base64": "secret"}
    key = next((k for k in sorted(_KEYS, key=len, reverse=True) if message.startswith(k)), None)
    key = key or next((v for k, v in keys.items() if k in message), None)
    if key is None:
        return start
    found = entry_key_line(text, "endpoints", start, key)
    return found if found != start else entry_key_line(text, "endpoints", start, key + "s")


def _endpoint(entry: Any, base: Path | None = None) -> Endpoint:
    if not isinstance(entry, dict):
        raise ValueError("each [[endpoints]] entry must be a table")
    unknown = set(entry) - _KEYS
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_KEYS))}")
    ident = entry.get("id")
    if not isinstance(ident, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", ident):
        raise ValueError("id must be a short name of letters, digits, '.', '_' or '-'")
    if "url" in entry and "url_file" in entry:
        raise ValueError("give url or url_file, not both")
    url_secret = "url_file" in entry
    url = _lines_of(entry["url_file"], base, "url_file", "a URL")[0] if url_secret else entry.get("url")
    if not isinstance(url, str):
        raise ValueError("url must be a string such as \"https://hooks.example.com/stream\" (or url_file, "
                         "the path of a file holding it)")
    check_url(url)
    given = [k for k in ("secret", "secrets", "secret_file") if k in entry]
    if len(given) > 1:
        raise ValueError(f"give one of secret, secrets and secret_file, not {' and '.join(given)}")
    secrets = entry.get("secrets", [entry["secret"]] if "secret" in entry else None)
    if "secret_file" in entry:
        secrets = _lines_of(entry["secret_file"], base, "secret_file", "a secret (one whsec_... a line)")
    if not isinstance(secrets, list) or not secrets or not all(isinstance(s, str) for s in secrets):
        raise ValueError("secret = \"whsec_...\" (or secrets = [\"whsec_new\", \"whsec_old\"], or secret_file = "
                         "\"/run/secrets/NAME\") is required")
    for s in secrets:
        secret_key(s)
    rules = entry.get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        raise ValueError("rules must be a list of rule ids")
    severity = entry.get("min_severity", "low")
    if severity not in SEVERITIES:
        raise ValueError(f"min_severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    headers = entry.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise ValueError("headers must be a table of strings")
    bad = {k for k in headers if k.lower() in _FORBIDDEN_HEADERS}
    if bad:
        raise ValueError(f"headers may not set {', '.join(sorted(bad))}")
    timeout = entry.get("timeout", 10)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= 120:
        raise ValueError("timeout must be a number of seconds between 0 and 120")
    concurrency = entry.get("concurrency", 4)
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or not 1 <= concurrency <= 64:
        raise ValueError("concurrency must be a whole number from 1 to 64")
    fmt = entry.get("format", "standard")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(map(repr, FORMATS))}, not {fmt!r}")
    rate = entry.get("rate")
    if rate is not None and (not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 < rate <= 1000):
        raise ValueError("rate must be a number of deliveries per second, more than 0 and at most 1000")
    digest = entry.get("digest")
    digest_minutes, digest_max = None, 50
    if digest is not None:
        if not (isinstance(digest, dict) and set(digest) <= {"minutes", "max"} and "minutes" in digest):
            raise ValueError("digest must be { minutes = M, max = N }, such as { minutes = 5, max = 50 }")
        minutes, most = digest["minutes"], digest.get("max", 50)
        if not isinstance(minutes, (int, float)) or isinstance(minutes, bool) or not 0 < minutes <= 1440:
            raise ValueError("digest minutes must be a number of minutes, more than 0 and at most 1440")
        if not isinstance(most, int) or isinstance(most, bool) or not 1 <= most <= 1000:
            raise ValueError("digest max must be a whole number of alerts from 1 to 1000")
        digest_minutes, digest_max = float(minutes), most
    return Endpoint(ident, url, tuple(secrets), tuple(rules), severity, tuple(headers.items()),
                    float(timeout), concurrency, fmt, float(rate) if rate is not None else None,
                    digest_minutes, digest_max, url_secret)


def parse_subscriptions(text: str, path: str | Path = "<webhooks>") -> Subscriptions:
    """Parse and validate.  :raises ConfigError: naming the file, line, endpoint and fix
    (never a secret)."""
    data = parse_toml(text, path)
    unknown = set(data) - {"endpoints", "delivery"}
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(sorted(unknown))}; use [delivery] and [[endpoints]]",
                          path=path)
    endpoints = []
    seen: set[str] = set()
    for index, entry in enumerate(data.get("endpoints", [])):
        ident = entry.get("id") if isinstance(entry, dict) else None
        line = line_containing(text, f'"{ident}"') if isinstance(ident, str) else None
        try:
            endpoint = _endpoint(entry, Path(path).parent)
        except ValueError as exc:
            name = f"endpoint {ident!r}" if isinstance(ident, str) else f"endpoint #{index + 1}"
            raise ConfigError(f"{name}: {exc}", path=path, line=_key_line(text, line, str(exc))) from None
        if endpoint.id in seen:
            raise ConfigError(f"endpoint {endpoint.id!r} is defined twice", path=path, line=line)
        seen.add(endpoint.id)
        endpoints.append(endpoint)
    if not endpoints:
        raise ConfigError("no endpoints: add [[endpoints]] tables (see docs/webhooks.md)", path=path)
    delivery = data.get("delivery", {})
    schedule = delivery.get("schedule", list(DEFAULT_SCHEDULE))
    if (not isinstance(schedule, list) or not schedule
            or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and s >= 0 for s in schedule)):
        raise ConfigError("[delivery] schedule must be a non-empty list of seconds, such as [0, 5, 300]",
                          path=path, line=line_containing(text, "schedule"))
    disable = delivery.get("disable_after_hours", 120)
    if not isinstance(disable, (int, float)) or disable <= 0:
        raise ConfigError("[delivery] disable_after_hours must be a positive number", path=path,
                          line=line_containing(text, "disable_after_hours"))
    bound = delivery.get("max_in_flight", 10_000)
    if not isinstance(bound, int) or isinstance(bound, bool) or bound < 1:
        raise ConfigError("[delivery] max_in_flight must be a whole number of jobs, at least 1 (default 10000)",
                          path=path, line=line_containing(text, "max_in_flight"))
    return Subscriptions(tuple(endpoints), tuple(float(s) for s in schedule), float(disable), bound, str(path))


def load_subscriptions(path: str | Path) -> Subscriptions:
    _data, text = read_toml(path, "webhook subscriptions")
    return parse_subscriptions(text, path)
