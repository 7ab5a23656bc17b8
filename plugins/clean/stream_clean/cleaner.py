"""Turning a raw article text into ``clean_text``.

In order:

1. HTML: when the text contains tags, scripts and styles are dropped whole, block tags
   become paragraph breaks, other tags go; entities are decoded (also in plain text);
2. Unicode: ftfy repairs mojibake and normalises to NFC (curly quotes are kept);
   zero-width, bidirectional-control and other invisible characters are removed, so they
   cannot hide a keyword or a duplicate;
3. leading metadata (`` date 2022-01-22``) is removed and returned;
4. the text is split into paragraphs (one per line; a line that is a hard wrap of the
   previous one is joined to it), whitespace is collapsed within each;
5. boilerplate paragraphs go: the rules of ``boilerplate.toml``, then the structural
   rules: runs of related headlines, trailing bylines and navigation words, repeats;
6. glued words and stray punctuation are repaired (``negotiationsLavrov`` ->
   ``negotiations Lavrov``, ``said. .`` -> ``said.``).
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from html.parser import HTMLParser

import ftfy

from .rules import Rules, Structure

__all__ = ["Cleaned", "clean"]

_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(\s[^<>]*)?/?>")
_ENTITY = re.compile(r"&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z]{2,8});")
_BLOCK_TAGS = frozenset({
    "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "section",
    "article", "header", "footer", "tr", "table", "figure", "figcaption", "pre", "hr", "dd", "dt",
})
_SKIP_TAGS = frozenset(["script", "style", "noscript", "template", "iframe", "svg", "head"])
# Zero-width, bidi controls, word joiners, BOM, soft hyphen, and the like.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]"
)
#: What ftfy would change, other than NFC: UTF-8 read as Latin-1 or Windows-1252 (a lead
#: byte such as "Ã" or "â" followed by a continuation byte or a Windows-1252 character),
#: ligatures, full-width forms, terminal escapes, odd line breaks, lone surrogates.  Text
#: without any of these goes straight to NFC: ftfy costs about 3 ms on a 4 KB article.
_FTFY_WORK = re.compile(
    "[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
    "\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122\ufffd]"
    "|[\u00c2-\u00f4] "  # "Ã " is "à" whose second byte, a no-break space, became a space
    # UTF-8 read as Windows-1251 ("РїСЂРёРІРµС‚", "вЂ™"): a lead byte (Р С а-ф), then a
    # continuation byte
    "|[\u0420\u0421\u0430-\u0444][\u0402\u0403\u0405-\u040c\u040e\u040f\u0452-\u045c\u045e\u045f\u0490\u0491"
    "\u00a0\u00a4\u00a6\u00a7\u00a9\u00ab-\u00ae\u00b0\u00b1\u00b5-\u00b7\u00bb"
    "\u201a\u201e\u2026\u2020\u2021\u20ac\u2030\u2039\u203a\u2018-\u201d\u2022\u2013\u2014\u2122\u2116\ufffd]"
    "|[\ufb00-\ufb06\uff01-\uff5e\x1b\x85\u2028\u2029\ud800-\udfff]"
)
#: The first characters of ``_FTFY_WORK``'s alternatives: one character class scans a text
#: five times faster than the alternatives, and most texts have none of them.
_FTFY_LEAD = re.compile("[\u00c2-\u00f4\u0420\u0421\u0430-\u0444\ufb00-\ufb06\uff01-\uff5e\x1b\x85\u2028\u2029"
                        "\ud800-\udfff]")
#: What goes: the invisible characters above and the control characters (Unicode category
#: Cc) but tab and newline, in one scan.  Line breaks are "\n" by then.
_REMOVED = re.compile(_INVISIBLE.pattern[:-1] + "\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: A paragraph ends like a sentence: a stop, then closing quotes or brackets, or a closing
#: quote (``_ends_sentence``).
_STOPS = (".", "!", "?", "…")
_CLOSERS = "\"'”’»)]"
_CLOSERS_END = ("\"", "”", "’", "»")
_WORD = re.compile(r"\w+(?:[’'-]\w+)*")
_GLUED = re.compile(r"\b([a-z]{3,})([A-Z][a-z]{2,})\b")
_SPACE_BEFORE_PUNCT = re.compile(r"(?<=\S)\s+([.,;:!?])(?=\s|$)")
#: ``_classes``' table: a-z -> a, A-Z -> A, .,;:!? -> p, space -> space, any other byte -> _
_CLASS_TABLE = bytes(
    97 if 97 <= b <= 122 else 65 if 65 <= b <= 90 else 112 if b in b".,;:!?" else 32 if b == 32 else 95
    for b in range(256)
)
_DOUBLE_PERIOD = re.compile(r"(?<![.])\.\s*\.(?![.])")
_CLOSE_QUOTE_GLUED = re.compile(r"\s*”(?=[^\W\d_])")
_LIST_MARK = re.compile(r"\s+[-–—]\s*$")
#: A list item inside the story: "- a halt to ...", "• Jan. 10: talks", "2. Another meeting".
_LIST_ITEM = re.compile(r"^\s*([-–—•*·▪]|\d{1,2}[.)])\s+\S")
#: The separators of a row of links: "Home > World", "A - B - C", "Contact | Privacy".
_ROW_SEPARATOR = re.compile(r"\s+[-–—|•·»>›/]\s+")
_PATH_SEPARATOR = re.compile(r"\s+[/>»›]\s+")
_NAV_ROW_MAX_WORDS = 20
_NAV_WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*|\d+")


@dataclass
class Cleaned:
    """The clean text and what was learnt on the way."""

    text: str
    metadata: dict[str, str] = field(default_factory=dict)
    #: ``[(rule name, paragraph)]`` of what was removed, for debugging and tests.
    removed: list[tuple[str, str]] = field(default_factory=list)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _strip_html(text: str) -> str:
    parser = _TextExtractor()
    parser.feed(text)
    parser.close()
    return "".join(parser.parts)


def normalize(text: str) -> str:
    """Steps 1-2: HTML, entities, mojibake, NFC, invisible characters."""
    if _TAG.search(text):
        text = _strip_html(text)
    elif _ENTITY.search(text):
        text = html.unescape(text)
    lead = _FTFY_LEAD.search(text)
    if lead and _FTFY_WORK.search(text, lead.start()):
        text = ftfy.fix_text(text, uncurl_quotes=False, normalization="NFC")
    elif not text.isascii() and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    if "\r" in text:  # Windows and old Mac line breaks
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _REMOVED.sub("", text)


@lru_cache(maxsize=8192)
def _tokens(text: str) -> tuple[str, ...]:
    """The words of a paragraph, found once: counted by the rules, joined by ``_key``."""
    return tuple(_WORD.findall(text))


def _words(text: str) -> int:
    return len(_tokens(text))


def _ends_sentence(text: str) -> bool:
    """``_TERMINAL.search(text)``, looking at the end only (the search tried every position)."""
    if text.endswith("\n"):
        text = text[:-1]
    return text.endswith(_CLOSERS_END) or text.rstrip(_CLOSERS).endswith(_STOPS)


def _paragraphs(text: str) -> list[str]:
    """One paragraph per line; a line continuing a hard-wrapped sentence joins the previous."""
    paragraphs: list[str] = []
    previous_blank = True
    for raw in text.split("\n"):
        line = " ".join(raw.split())  # whitespace runs collapsed, ends stripped
        if not line:
            previous_blank = True
            continue
        if (paragraphs and not previous_blank and not _ends_sentence(paragraphs[-1])
                and line[0].islower()):
            paragraphs[-1] += " " + line
        else:
            paragraphs.append(line)
        previous_blank = False
    return paragraphs


def _classes(text: str) -> bytes:
    """``text``'s UTF-8 bytes with a-z as ``a``, A-Z as ``A``, ``.,;:!?`` as ``p``, a space
    as itself and every other byte as ``_``: the triggers of the repairs are then
    substring tests (a regular expression scanning for them cost 5-10 us a paragraph)."""
    return text.encode().translate(_CLASS_TABLE)


def _repair(paragraph: str) -> str:
    # Each pattern runs only where its trigger is.
    classes = _classes(paragraph)
    if "”" in paragraph:
        paragraph = _CLOSE_QUOTE_GLUED.sub("” ", paragraph)
    if b" p" in classes:
        paragraph = _SPACE_BEFORE_PUNCT.sub(r"\1", paragraph)
    if ".." in paragraph or ". ." in paragraph:
        paragraph = _DOUBLE_PERIOD.sub(".", paragraph)
    if b"aA" in classes:
        paragraph = _GLUED.sub(r"\1 \2", paragraph)
    return paragraph.strip()


def _link_row(paragraph: str, structure: Structure) -> bool:
    """A row of links or headlines: parts cut by separators, each short and starting with a
    capital or a digit, the whole not ending like a sentence."""
    if _ends_sentence(paragraph):
        return False
    parts = [part for part in _ROW_SEPARATOR.split(paragraph) if part.strip()]
    path = len(parts) == 2 and bool(_PATH_SEPARATOR.search(paragraph)) and all(_words(p) <= 3 for p in parts)
    return (len(parts) >= structure.row_min_parts or path) and all(
        _words(part) <= structure.row_part_max_words and (part.lstrip("\"“'(")[:1].isupper()
                                                          or part.lstrip()[:1].isdigit())
        for part in parts
    )


def _nav_row(paragraph: str, nav_words: frozenset[str]) -> bool:
    """Only navigation words (and numbers): "Facebook Twitter Email", "1 2 3 Next"."""
    words = _NAV_WORD.findall(paragraph.lower())
    return bool(nav_words) and bool(words) and all(w in nav_words or w.isdigit() for w in words)


def _key(paragraph: str) -> str:
    return " ".join(_tokens(paragraph)).lower()


def clean(text: str, rules: Rules) -> Cleaned:
    """Clean one article text with ``rules``.  Never raises on odd input."""
    result = Cleaned(text="")
    text = normalize(text)
    for meta in rules.metadata:
        match = meta.pattern.match(text)
        if match:
            result.metadata[meta.field] = match.group(1)
            text = text[match.end():]
    paragraphs = _paragraphs(text)
    structure = rules.structure

    def headline_like(p: str) -> bool:
        core = _LIST_MARK.sub("", p) if p.rstrip()[-1:] in "-–—" else p
        return not _LIST_ITEM.match(p) and _words(core) <= structure.headline_max_words and (
            not _ends_sentence(core) or core != p
        )

    gates, by_words = rules.gates, rules.drop_by_words
    kept: list[str] = []
    following: str | None = None  # the rule whose headline-like followers go too
    for paragraph in paragraphs:
        low = paragraph.lower()
        present = gates.present(low)
        for strip in rules.strip:
            if not strip.needs or not present.isdisjoint(strip.needs):
                stripped = strip.pattern.sub("", paragraph).strip()
                if stripped != paragraph:
                    paragraph, low = stripped, stripped.lower()
                    present = gates.present(low)
        if not paragraph:
            continue
        words = _words(paragraph)
        if following and words <= structure.headline_max_words and not _ends_sentence(paragraph):
            result.removed.append((following, paragraph))
            continue
        following = None
        matched = None
        for r in by_words[words] if words < len(by_words) else ():
            if (not r.needs or not present.isdisjoint(r.needs)) and r.pattern.search(paragraph):
                matched = r
                break
        rule = matched.name if matched else None
        # Rows of links or buttons are short: a long paragraph is not scanned for them.
        if rule is None and words <= _NAV_ROW_MAX_WORDS and _nav_row(paragraph, rules.nav_words):
            rule = "nav-row"
        if (rule is None and words <= structure.row_min_parts * structure.row_part_max_words
                and _link_row(paragraph, structure)):
            rule = "link-row"
        if rule:
            result.removed.append((rule, paragraph))
            following = rule if matched is not None and matched.and_following else None
        else:
            kept.append(paragraph)

    # Runs of related headlines after the body has started.
    flags = [headline_like(p) for p in kept]
    body_started = False
    drop = [False] * len(kept)
    i = 0
    while i < len(kept):
        if not flags[i]:
            body_started = True
            i += 1
            continue
        j = i
        while j < len(kept) and flags[j]:
            j += 1
        introduced = i > 0 and kept[i - 1].rstrip().endswith(":")
        # Two in a row are a list at the end, when marked with dashes, or when each is as
        # long as a headline; in the middle of the body a short subheading after a story's
        # title is two too, so a run of short ones takes `headline_run_middle`.
        listed = j == len(kept) or any(_LIST_MARK.search(kept[k]) for k in range(i, j)) or all(
            _words(kept[k]) >= structure.headline_list_min_words for k in range(i, j))
        long_enough = j - i >= (structure.headline_run if listed
                                else max(structure.headline_run, structure.headline_run_middle))
        if body_started and long_enough and not introduced:
            for k in range(i, j):
                drop[k] = True
                result.removed.append(("headline-list", kept[k]))
        i = j
    # Trailing navigation words, bylines and the like.
    k = len(kept) - 1
    first_body = next((n for n, f in enumerate(flags) if not f), len(kept))
    while k > first_body:
        p = kept[k]
        if drop[k]:
            k -= 1
            continue
        if p.lower().strip(" .:|»") in rules.trailing or (
            flags[k] and _words(p) <= structure.trailing_max_words
        ):
            drop[k] = True
            result.removed.append(("trailing", p))
            k -= 1
            continue
        break
    kept = [p for p, d in zip(kept, drop, strict=True) if not d]

    # Repeats: a paragraph contained in another, longer (or equal and earlier) one.
    keys = [f" {_key(p)} " for p in kept]
    # A key found once in all the keys (joined by a character no key holds) is in no other.
    everything = "\0".join(keys)
    final: list[str] = []
    for n, p in enumerate(kept):
        if _words(p) >= structure.repeat_min_words and everything.count(keys[n]) > 1 and any(
            m != n and keys[n] in keys[m] and (len(keys[m]) > len(keys[n]) or m < n)
            for m in range(len(kept))
        ):
            result.removed.append(("repeat", p))
            continue
        final.append(_repair(p))
    result.text = "\n\n".join(p for p in final if p)
    return result
