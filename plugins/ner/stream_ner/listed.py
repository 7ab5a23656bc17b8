"""The entity list found in the text, also where the model missed it.

Every name and alias of the entity list (the built-in ``aliases.toml`` and the user's
``entities_file``) is searched for in one pass of an Aho-Corasick automaton:

* on word boundaries (a hyphen joins words: "Russia" is not found in "NATO-Russia
  Council"), at least three characters;
* as written, or in capitals (a headline in capitals: "PUTIN"); never in lower case, so
  that "the alliance" in a sentence is not the Alliance; an acronym such as "ERCOT" only as
  written; a leading "the" of a listed form is left out ("the Alliance" is found as
  "Alliance");
* the longest of overlapping listed forms wins.

A listed match that overlaps the model's spans replaces them when it is at least as long as
each (its label, when the list gives one, overrides the model's; the model's stays in
``model_label``); a longer model span keeps its place.  A listed match where the model found
nothing is added with the list's label (``"source": "list"``); an entry without a label only
renames and links what the model found.
"""

from __future__ import annotations

from typing import Any

import ahocorasick

from .canonical import Alias, AliasTable, normal_form

__all__ = ["LISTED", "MIN_CHARS", "ListedMatcher"]

#: Marks a mention the list labelled, until the NER processor has run the gazetteer (which
#: leaves its label alone) and removes the mark.
LISTED = "_listed"

#: Shorter listed forms are not searched for (too many false matches).
MIN_CHARS = 3


def _is_word(c: str) -> bool:
    return c.isalnum() or c == "_"


def _boundary(text: str, at: int, step: int) -> bool:
    """Whether ``text[at]`` (the character before a match, ``step`` -1, or after it, 1)
    ends a word there: not a letter or digit, and not a hyphen that joins one ("Russia" in
    "NATO-Russia Council" is part of another name)."""
    if at < 0 or at >= len(text):
        return True
    if _is_word(text[at]):
        return False
    beyond = at + step
    return not (text[at] == "-" and 0 <= beyond < len(text) and _is_word(text[beyond]))


class ListedMatcher:
    """The forms of an :class:`~stream_ner.canonical.AliasTable`, compiled."""

    def __init__(self, table: AliasTable):
        self.automaton: Any = ahocorasick.Automaton()
        for written, alias in table.forms.items():
            form = normal_form(written)  # "the Alliance" -> "Alliance": the article is not the name
            if len(form) < MIN_CHARS:
                continue
            exact = form.isupper()
            key = form.lower()
            entries = self.automaton.get(key, [])
            entries.append((form, exact, alias))
            self.automaton.add_word(key, entries)
        self.empty = len(self.automaton) == 0
        if not self.empty:
            self.automaton.make_automaton()

    def find(self, text: str) -> list[tuple[int, int, Alias]]:
        """``(start, end, alias)`` of the listed forms in ``text``, longest first where
        they overlap, in text order."""
        if self.empty:
            return []
        low = text.lower()
        if len(low) != len(text):  # a few characters lower-case to two ("İ"): keep the offsets
            low = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
        found: list[tuple[int, int, Alias]] = []
        for last, entries in self.automaton.iter(low):
            for form, exact, alias in entries:
                end = last + 1
                start = end - len(form)
                if not _boundary(text, start - 1, -1) or not _boundary(text, end, 1):
                    continue
                seen = text[start:end]
                if seen != form and (exact or not seen.isupper()):
                    continue  # "ercot" is not ERCOT, "alliance" not the Alliance; "PUTIN" is Putin
                found.append((start, end, alias))
                break
        found.sort(key=lambda f: (f[0], -(f[1] - f[0])))
        out: list[tuple[int, int, Alias]] = []
        for start, end, alias in found:
            if out and start < out[-1][1]:
                continue
            out.append((start, end, alias))
        return out

    def apply(self, text: str, mentions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``mentions`` (the model's) with the listed matches of ``text`` merged in, in text
        order (see the module docstring)."""
        listed = self.find(text)
        if not listed:
            return mentions
        drop: set[int] = set()
        added: list[dict[str, Any]] = []
        for start, end, alias in listed:
            over = [n for n, m in enumerate(mentions) if m["start"] < end and start < m["end"]]
            if any(mentions[n]["end"] - mentions[n]["start"] > end - start for n in over):
                continue  # a longer model span wins
            model_labels = [mentions[n]["label"] for n in over]
            label = alias.label or (model_labels[0] if model_labels else None)
            if label is None:
                continue  # nothing says what it is
            mention: dict[str, Any] = {"text": text[start:end], "label": label, "start": start, "end": end,
                                       LISTED: True}
            if not over:
                mention["source"] = "list"
            elif model_labels[0] != label:
                mention["model_label"] = model_labels[0]
            drop.update(over)
            added.append(mention)
        kept = [m for n, m in enumerate(mentions) if n not in drop]
        return sorted([*kept, *added], key=lambda m: (m["start"], m["end"]))
