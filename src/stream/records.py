"""The records stream reads and writes: the public contract, ``docs/records.md``.

Everything is JSON encoded with orjson.  Decoding an input record checks its size before
parsing and validates every field; what fails raises :class:`~stream.errors.RecordError`
with a reason that goes into the dead letter.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from .errors import RecordError

__all__ = [
    "SCHEMA_VERSION",
    "Alert",
    "Article",
    "DeadLetter",
    "decode_article",
    "dumps",
    "encode_dead_letter",
    "loads",
    "make_id",
    "utcnow",
]

#: Version of the enriched-record schema; bumped on an incompatible change.
SCHEMA_VERSION = 1

INPUT_FIELDS = ("id", "url", "title", "text", "source", "published_at", "language", "html")
_OPTIONAL_STR = ("url", "title", "source", "published_at", "language", "html")
#: Names that processors fill; an input record may not carry them.
ENRICHMENT_FIELDS = (
    "clean_text",
    "entities",
    "entity_summary",
    "dedup",
    "alerts",
    "processing",
    "schema_version",
    "extra",
    "language_confidence",
    "story",
    "revision",
)


def dumps(obj: Any) -> bytes:
    """Encode ``obj`` as JSON bytes (orjson; non-str dict keys allowed)."""
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)


def loads(data: bytes | str) -> Any:
    """Decode JSON bytes (orjson)."""
    return orjson.loads(data)


def utcnow() -> str:
    """The current time as ISO 8601 in UTC with milliseconds, e.g. ``2026-11-23T10:00:00.000Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_id(url: str | None, text: str) -> str:
    """A stable id: a hash of the url when there is one, otherwise of the text."""
    basis = url.strip() if url and url.strip() else text
    return hashlib.blake2b(basis.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


@dataclass(slots=True)
class Article:
    """One article on its way through the processors.

    The input fields come from the record; processors fill the enrichment fields in place.
    ``extra`` is where third-party plugins put their own enrichment, under their name.
    """

    id: str
    text: str
    url: str | None = None
    title: str | None = None
    source: str | None = None
    published_at: str | None = None
    language: str | None = None
    #: The article's web page, in place of ``text``: the clean plugin extracts the text (and
    #: the title, author and date the input lacks) and then drops it.
    html: str | None = None
    #: Input fields outside the contract, passed through untouched.
    passthrough: dict[str, Any] = field(default_factory=dict)
    clean_text: str = ""
    entities: list[dict[str, Any]] = field(default_factory=list)
    entity_summary: list[dict[str, Any]] = field(default_factory=list)
    dedup: dict[str, Any] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    #: ``[{"name", "version", "ms"}]``, one entry per processor that ran.
    plugins_run: list[dict[str, Any]] = field(default_factory=list)
    #: The confidence of a detected ``language`` (0 to 1; ``None`` when the input gave it).
    language_confidence: float | None = None
    #: ``{processor name: reason}``: processors that left this article alone on purpose
    #: (see :meth:`skip`); the reason goes into its ``processing`` entry.
    skipped: dict[str, str] = field(default_factory=dict)
    #: The story the article belongs to, as of this article (the stories plugin):
    #: ``{"id", "articles", "sources", "languages", "first_seen", "last_seen"}``.
    story: dict[str, Any] = field(default_factory=dict)
    #: Present when the article is a changed version of one seen before, same ``id`` or
    #: ``url`` (the dedup plugin): ``{"number": 1, "of": id, "added": [...], "removed": [...]}``.
    revision: dict[str, Any] = field(default_factory=dict)
    #: Records a processor publishes because of this article, besides the enriched record
    #: and its alerts: ``(topic, key, value)``, added with :meth:`emit`.
    outputs: list[tuple[str, str, Any]] = field(default_factory=list)

    def event_time(self, arrived: float, future: float = 3600.0) -> float:
        """When the article happened, as a Unix time: ``published_at``, else ``arrived``
        (also when ``published_at`` is more than ``future`` seconds after ``arrived``: a
        wrong clock or time zone).  A ``published_at`` without a time zone is UTC.

        .. versionadded:: 0.3 (plugin API 1.2)
        """
        if not self.published_at:
            return arrived
        try:
            t = datetime.fromisoformat(self.published_at.replace("Z", "+00:00"))
        except ValueError:
            return arrived
        at = (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()
        return arrived if at > arrived + future else at

    def emit(self, topic: str, key: str, value: Any) -> None:
        """Publish ``value`` (JSON-able; ``None`` deletes ``key`` from a compacted topic) to
        ``topic``, keyed by ``key``, with this article's enriched record: in the worker in the
        same batch (and transaction), after the state changes are written; ``stream process``
        publishes nothing.  The topic must exist: declare it in ``stream_register_topics``.

        .. versionadded:: 0.3 (plugin API 1.2)
        """
        self.outputs.append((topic, key, value))

    def skip(self, processor: str, reason: str) -> None:
        """Record that ``processor`` did not enrich this article, and why (an NER without a
        model for the article's language): its ``processing`` entry says
        ``"skipped": true, "reason": ...``."""
        self.skipped[processor] = reason

    @classmethod
    def from_dict(cls, data: Any) -> Article:
        """Validate a decoded input record.  :raises RecordError: with the reason."""
        if not isinstance(data, dict):
            raise RecordError(f"an article must be a JSON object, not {type(data).__name__}")
        text = data.get("text")
        html = data.get("html")
        if text is None and isinstance(html, str) and html.strip():
            text = ""  # the clean plugin extracts it from the page
        elif text is None:
            raise RecordError("missing required field 'text' (or 'html', the article's page)")
        elif not isinstance(text, str):
            raise RecordError(f"field 'text' must be a string, not {type(text).__name__}")
        elif not text.strip():
            raise RecordError("field 'text' is empty")
        kwargs: dict[str, Any] = {}
        for name in _OPTIONAL_STR:
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise RecordError(f"field {name!r} must be a string, not {type(value).__name__}")
            kwargs[name] = value
        if kwargs["published_at"]:
            try:
                datetime.fromisoformat(kwargs["published_at"].replace("Z", "+00:00"))
            except ValueError:
                raise RecordError(
                    f"field 'published_at' is not an ISO 8601 date: {kwargs['published_at']!r}"
                ) from None
        ident = data.get("id")
        if ident is None:
            ident = make_id(kwargs["url"], text or kwargs["html"] or "")
        elif not isinstance(ident, str) or not ident.strip():
            raise RecordError("field 'id' must be a non-empty string")
        reserved = [k for k in data if k in ENRICHMENT_FIELDS]
        if reserved:
            raise RecordError(
                f"input carries enrichment field(s) {', '.join(reserved)}; send the original "
                "article, not an enriched record"
            )
        passthrough = {k: v for k, v in data.items() if k not in INPUT_FIELDS}
        return cls(id=ident, text=text, passthrough=passthrough, **kwargs)

    def to_state(self) -> dict[str, Any]:
        """Every field, for handing an article from one stage of the worker to the next.
        ``story``, ``revision`` and ``outputs`` only when filled (never in stage 1): a worker of the
        previous version reads the hand-off during a rolling upgrade."""
        state = {name: getattr(self, name) for name in self.__slots__}
        for name in ("story", "outputs", "revision"):
            if not state[name]:
                del state[name]
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Article:
        return cls(**state)

    def to_dict(self, *, worker: str = "", processed_at: str | None = None) -> dict[str, Any]:
        """The enriched record (see ``docs/records.md``)."""
        out: dict[str, Any] = {"id": self.id}
        for name in ("url", "title", "text", "source", "published_at", "language", "language_confidence"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out.update(self.passthrough)
        out["clean_text"] = self.clean_text
        out["entities"] = self.entities
        out["entity_summary"] = self.entity_summary
        out["dedup"] = self.dedup
        out["alerts"] = self.alerts
        if self.story:
            out["story"] = self.story
        if self.revision:
            out["revision"] = self.revision
        if self.extra:
            out["extra"] = self.extra
        out["processing"] = {
            "plugins": self.plugins_run,
            "worker": worker,
            "processed_at": processed_at or utcnow(),
        }
        out["schema_version"] = SCHEMA_VERSION
        return out


def _has_big_integral_float(value: Any) -> bool:
    """Whether orjson produced a float that may have been an integer beyond 64 bits."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float) and item.is_integer() and abs(item) >= 2**63:
            return True
    return False


def _refuse_big_integers(data: bytes) -> None:
    """orjson turns integers beyond 64 bits into lossy floats; the standard parser sees the
    literals.  Only called when a suspicious float was found (rare)."""
    import json

    def parse_int(literal: str) -> int:
        number = int(literal)
        if not -(2**63) <= number < 2**64:
            raise RecordError(f"a number ({literal}) is beyond 64-bit integers and would lose precision; "
                              "send it as a string")
        return number

    try:
        json.loads(data, parse_int=parse_int)
    except RecursionError:
        raise RecordError("JSON nested too deeply") from None


def decode_article(data: bytes, *, max_bytes: int) -> Article:
    """Decode and validate one input record.

    The size is checked before parsing; orjson rejects invalid UTF-8, lone surrogates,
    integers beyond 64 bits and nesting deeper than 1024 levels.

    :raises RecordError: with a reason fit for a dead letter.
    """
    if len(data) > max_bytes:
        raise RecordError(
            f"record is {len(data)} bytes, over the limit of {max_bytes} (setting max_article_bytes)"
        )
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"not valid JSON: {exc}") from None
    except RecursionError:  # pragma: no cover - orjson has its own depth limit
        raise RecordError("JSON nested too deeply") from None
    article = Article.from_dict(parsed)
    if article.passthrough and _has_big_integral_float(article.passthrough):
        _refuse_big_integers(data)
    return article


@dataclass(slots=True)
class Alert:
    """An alert raised by a rule on an article (``docs/records.md``)."""

    alert_id: str
    rule_id: str
    article_id: str
    title: str | None
    url: str | None
    matched: list[dict[str, Any]]
    snippet: str
    severity: str
    created_at: str = field(default_factory=utcnow)

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "rule_id": self.rule_id,
            "article_id": self.article_id,
            "title": self.title,
            "url": self.url,
            "matched": self.matched,
            "snippet": self.snippet,
            "severity": self.severity,
            "created_at": self.created_at,
        }


@dataclass(slots=True)
class DeadLetter:
    """A record that could not be processed, with the reason and the original bytes."""

    error_type: str
    message: str
    stage: str
    original: bytes
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    article_id: str | None = None
    failed_at: str = field(default_factory=utcnow)
    #: The size of the original record in bytes (``original`` may hold only its start).
    original_size: int | None = None

    def fit(self, limit: int) -> DeadLetter:
        """Keep at most ``limit`` bytes of the original (a dead letter must fit the topic:
        the whole original stays in its source topic, at ``topic``/``partition``/``offset``)."""
        if self.original_size is None:
            self.original_size = len(self.original)
        if len(self.original) > limit:
            self.original = self.original[:limit]
        return self

    @property
    def truncated(self) -> bool:
        return self.original_size is not None and self.original_size > len(self.original)

    def to_dict(self) -> dict[str, Any]:
        return {
            # "plugin": the stage's old name, kept for one version (until 2.0).
            "error": {"type": self.error_type, "message": self.message, "stage": self.stage, "plugin": self.stage},
            "article_id": self.article_id,
            "original": base64.b64encode(self.original).decode("ascii"),
            "original_size": len(self.original) if self.original_size is None else self.original_size,
            "original_truncated": self.truncated,
            "source": {"topic": self.topic, "partition": self.partition, "offset": self.offset},
            "failed_at": self.failed_at,
            "schema_version": SCHEMA_VERSION,
        }

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers added to the dead letter (the original headers are kept too)."""
        pairs = [
            ("stream-error-type", self.error_type),
            ("stream-error-stage", self.stage),
            ("stream-error-message", self.message[:500]),
        ]
        if self.truncated:
            pairs.append(("stream-original-truncated", f"{len(self.original)} of {self.original_size} bytes"))
        if self.topic is not None:
            pairs += [
                ("stream-source-topic", self.topic),
                ("stream-source-partition", str(self.partition)),
                ("stream-source-offset", str(self.offset)),
            ]
        return [(k, v.encode("utf-8", "replace")) for k, v in pairs]


def encode_dead_letter(letter: DeadLetter, *, limit: int, headers_size: int = 0) -> bytes:
    """``letter`` as JSON, at most ``limit`` bytes together with ``headers_size`` bytes of
    Kafka headers: when the whole original would not fit, the letter carries its start, its
    size (``original_size``) and says so (``original_truncated``); the whole original stays
    in its source topic at the letter's ``source`` coordinates."""
    value = dumps(letter.to_dict())
    if len(value) + headers_size <= limit:
        return value
    original = letter.original
    letter.original_size = len(original) if letter.original_size is None else letter.original_size
    letter.original = b""
    # Room left for the original in base64 (4 bytes per 3), with slack for the header that
    # says it was cut and the digits of the sizes.
    room = limit - headers_size - len(dumps(letter.to_dict())) - 256
    letter.original = original
    letter.fit(max(0, room) * 3 // 4)
    return dumps(letter.to_dict())
