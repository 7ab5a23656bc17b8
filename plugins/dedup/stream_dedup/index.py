"""Signatures and the dedup index.

A signature of a text is: the hash of its normalised words (exact copies), a MinHash of
its word 5-gram shingles (datasketch, 128 permutations) with the shingle count, and the
hashes of its first substantial paragraphs ("lead" paragraphs).

Candidates for a near copy come from two in-memory indexes: MinHash LSH (for edited and
re-headlined copies, Jaccard >= ``lsh_threshold``) and the lead-paragraph index (a truncated
syndicated copy keeps the lead, but its Jaccard with the full text can be as low as 0.2).
Each candidate is verified with the MinHash estimates: Jaccard J, and the overlap
coefficient |A∩B| / min(|A|, |B|) (how much of the shorter text is in the longer one),
computed as J(|A|+|B|)/(1+J) / min(|A|, |B|).
"""

from __future__ import annotations

import base64
import hashlib
import re
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from datasketch import MinHash, MinHashLSH

__all__ = ["DedupIndex", "Signature", "sign"]

_WORD = re.compile(r"\w+")
NUM_PERM = 128
#: datasketch's permutation scheme, fixed so that stored signatures stay comparable.
SCHEME = "affine32"
SHINGLE = 5
LEAD_PARAGRAPHS = 4
LEAD_MIN_WORDS = 8
#: A paragraph shared by more articles than this is a stock phrase: not a candidate source.
LEAD_FANOUT = 50


def _crc32(data: bytes) -> int:
    return zlib.crc32(data)


#: datasketch draws the permutations of each new MinHash from a seeded generator (the same for
#: every one, seed 1): a third of the cost of signing an article.  Drawn once here, and shared.
_PERMUTATIONS = MinHash(num_perm=NUM_PERM, hashfunc=_crc32, scheme=SCHEME).permutations


@dataclass(slots=True)
class Signature:
    exact: str
    minhash: MinHash | HashValues
    size: int  # distinct shingles
    leads: list[str]

    def to_state(self) -> dict[str, Any]:
        values = np.asarray(self.minhash.hashvalues, dtype=np.uint32).tobytes()
        return {"x": self.exact, "h": base64.b64encode(values).decode(), "n": self.size, "l": self.leads}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Signature:
        """A signature read back from the state: its hash values are all the index needs of
        it (a datasketch ``MinHash`` per signature cost a fifth of a 200,000-signature
        rebuild)."""
        values = np.frombuffer(base64.b64decode(state["h"]), dtype=np.uint32).copy()
        return cls(state["x"], HashValues(values), state["n"], state["l"])


class HashValues:
    """The hash values of a MinHash read back from the state (what ``MinHash.hashvalues``
    is; the index reads nothing else)."""

    __slots__ = ("hashvalues",)

    def __init__(self, hashvalues: Any) -> None:
        self.hashvalues = hashvalues

    def __len__(self) -> int:
        return len(self.hashvalues)


def _key(words: list[str]) -> str:
    return hashlib.blake2b(" ".join(words).encode(), digest_size=12).hexdigest()


def sign(text: str) -> Signature:
    """The signature of ``text`` (``clean_text``): case, whitespace and punctuation ignored."""
    words = [w.casefold() for w in _WORD.findall(text)]
    shingles = {" ".join(words[i:i + SHINGLE]).encode() for i in range(max(1, len(words) - SHINGLE + 1))}
    minhash = MinHash(num_perm=NUM_PERM, hashfunc=_crc32, scheme=SCHEME, permutations=_PERMUTATIONS)
    minhash.update_batch(list(shingles))
    leads = []
    for paragraph in text.split("\n\n"):
        pw = [w.casefold() for w in _WORD.findall(paragraph)]
        if len(pw) >= LEAD_MIN_WORDS:
            leads.append(_key(pw))
            if len(leads) == LEAD_PARAGRAPHS:
                break
    return Signature(_key(words), minhash, len(shingles), leads)


@dataclass(frozen=True, slots=True)
class Match:
    article_id: str
    kind: str  # "exact" or "near"
    similarity: float
    jaccard: float
    overlap: float


class Bands:
    """MinHash LSH: the hash values cut into ``b`` bands of ``r`` (datasketch's choice of b
    and r for the threshold: ``MinHashLSH.hashranges``), each band a table from the band's
    bytes to the keys that have it; two signatures are candidates when one band is equal.

    Ours rather than datasketch's storage for one reason: a rebuild of the whole index (a
    worker taking stage 2 over) inserts a band of every signature at once with numpy
    (:meth:`insert_many`): 200,000 signatures took about 18 s one by one through
    ``MinHashLSH.insert`` (R13 of ``make bench``)."""

    def __init__(self, threshold: float, num_perm: int = NUM_PERM):
        self.ranges: list[tuple[int, int]] = [(int(a), int(b)) for a, b in
                                              MinHashLSH(threshold=threshold, num_perm=num_perm).hashranges]
        self.tables: list[dict[bytes, list[str]]] = [{} for _ in self.ranges]
        self.bands_of: dict[str, tuple[bytes, ...]] = {}

    def insert(self, key: str, hashvalues: Any) -> None:
        values = np.asarray(hashvalues, dtype=np.uint32)
        bands = tuple(values[a:b].tobytes() for a, b in self.ranges)
        for table, band in zip(self.tables, bands, strict=True):
            keys = table.get(band)
            if keys is None:
                table[band] = [key]
            else:
                keys.append(key)
        self.bands_of[key] = bands

    def insert_many(self, keys: list[str], matrix: Any) -> None:
        """:meth:`insert` of ``keys[i]`` with the hash values of row ``i`` of ``matrix``, a
        band of all of them at a time."""
        if not keys:
            return
        values = np.ascontiguousarray(matrix, dtype=np.uint32)
        per_band = []
        for (a, b), table in zip(self.ranges, self.tables, strict=True):
            band = values[:, a:b].copy().view(f"V{4 * (b - a)}").ravel().tolist()  # bytes, as tobytes()
            per_band.append(band)
            for raw, key in zip(band, keys, strict=True):
                got = table.get(raw)
                if got is None:
                    table[raw] = [key]
                else:
                    got.append(key)
        self.bands_of.update(zip(keys, zip(*per_band, strict=True), strict=True))

    def remove(self, key: str) -> None:
        bands = self.bands_of.pop(key, None)
        if bands is None:
            return
        for table, band in zip(self.tables, bands, strict=True):
            keys = table.get(band)
            if keys is not None and key in keys:
                keys.remove(key)
                if not keys:
                    del table[band]

    def query(self, hashvalues: Any) -> set[str]:
        values = np.asarray(hashvalues, dtype=np.uint32)
        found: set[str] = set()
        for (a, b), table in zip(self.ranges, self.tables, strict=True):
            keys = table.get(values[a:b].tobytes())
            if keys:
                found.update(keys)
        return found


class DedupIndex:
    """The in-memory indexes over the signatures kept in state (rebuilt from it at start)."""

    def __init__(self, *, jaccard: float, overlap: float, lsh_threshold: float):
        self.jaccard = jaccard
        self.overlap = overlap
        self.lsh = Bands(lsh_threshold, NUM_PERM)
        self.signatures: OrderedDict[str, tuple[Signature, float]] = OrderedDict()  # oldest first
        self.exact: dict[str, str] = {}
        self.leads: dict[str, list[str]] = {}

    def __len__(self) -> int:
        return len(self.signatures)

    def add(self, article_id: str, sig: Signature, at: float) -> None:
        if article_id in self.signatures:
            return
        self.signatures[article_id] = (sig, at)
        self.lsh.insert(article_id, sig.minhash.hashvalues)
        self._other_indexes(article_id, sig)

    def _other_indexes(self, article_id: str, sig: Signature) -> None:
        self.exact.setdefault(sig.exact, article_id)
        for lead in sig.leads:
            ids = self.leads.setdefault(lead, [])
            if len(ids) <= LEAD_FANOUT:
                ids.append(article_id)

    def add_many(self, entries: list[tuple[str, Signature, float]]) -> None:
        """:meth:`add` of every ``(article id, signature, at)``, in order (oldest first): the
        LSH bands a band at a time (a rebuild from the state)."""
        fresh: list[tuple[str, Signature]] = []
        for article_id, sig, at in entries:
            if article_id in self.signatures:
                continue
            self.signatures[article_id] = (sig, at)
            self._other_indexes(article_id, sig)
            fresh.append((article_id, sig))
        if fresh:
            self.lsh.insert_many([a for a, _s in fresh],
                                 np.stack([np.asarray(sig.minhash.hashvalues, dtype=np.uint32) for _a, sig in fresh]))

    def remove(self, article_id: str) -> None:
        entry = self.signatures.pop(article_id, None)
        if entry is None:
            return
        sig, _at = entry
        self.lsh.remove(article_id)
        if self.exact.get(sig.exact) == article_id:
            del self.exact[sig.exact]
        for lead in sig.leads:
            ids = self.leads.get(lead)
            if ids and article_id in ids:
                ids.remove(article_id)
                if not ids:
                    del self.leads[lead]

    def oldest(self) -> tuple[str, float] | None:
        for article_id, (_sig, at) in self.signatures.items():
            return article_id, at
        return None

    def find(self, article_id: str, sig: Signature) -> Match | None:
        """The best earlier copy of ``sig``, or None."""
        first = self.exact.get(sig.exact)
        if first is not None and first != article_id:
            return Match(first, "exact", 1.0, 1.0, 1.0)
        candidates = self.lsh.query(sig.minhash.hashvalues)
        for lead in sig.leads:
            candidates.update(self.leads.get(lead, ()))
        candidates.discard(article_id)
        others = [(other, entry[0]) for other in candidates if (entry := self.signatures.get(other)) is not None]
        if not others:
            return None
        # The Jaccard estimates of all candidates at once (what MinHash.jaccard computes one
        # by one: the share of equal hash values).
        values = np.stack([osig.minhash.hashvalues for _other, osig in others])
        estimates = np.count_nonzero(values == sig.minhash.hashvalues, axis=1) / NUM_PERM
        best: Match | None = None
        for (other, osig), estimate in zip(others, estimates.tolist(), strict=True):
            j = float(estimate)
            inter = j * (sig.size + osig.size) / (1 + j)
            ov = min(1.0, inter / max(1, min(sig.size, osig.size)))
            if j >= self.jaccard or ov >= self.overlap:
                score = max(j, ov)
                if best is None or score > best.similarity or (score == best.similarity and other < best.article_id):
                    best = Match(other, "near", round(score, 4), round(j, 4), round(ov, 4))
        return best
