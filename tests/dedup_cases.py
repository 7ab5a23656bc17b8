"""Copies of the sample articles, the way news arrives again: shared by the dedup tests."""

from __future__ import annotations

import random
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "articles"


def sample(prefix: str) -> str:
    [path] = EXAMPLES.glob(f"{prefix}_*.txt")
    return path.read_text()


def edited(text: str, seed: int = 1) -> str:
    """About one word in 40 replaced, as a copy editor would."""
    rng = random.Random(seed)
    words = text.split(" ")
    for _ in range(max(1, len(words) // 40)):
        words[rng.randrange(len(words))] = rng.choice(["said", "officials", "reportedly", "new"])
    return " ".join(words)


def reheadlined(text: str) -> str:
    return ("EXCLUSIVE: Moscow sets out its demands\n\n" + text
            + "\n\nFollow our live coverage of the crisis for the latest updates.\n\nEditor: Jane Roe")


def truncated(text: str, share: float = 0.4) -> str:
    paragraphs = [p for p in text.split("\n") if p.strip()]
    return "\n\n".join(paragraphs[: max(2, int(len(paragraphs) * share))])


def shares_a_paragraph(text: str) -> str:
    """A different article that quotes one paragraph of ``text``."""
    quoted = max((p for p in text.split("\n") if p.strip()), key=len)
    return ("Markets in Frankfurt rose on Tuesday as investors weighed new data on German industrial "
            "output, which grew for the third month running according to the statistics office.\n\n"
            f"{quoted}\n\nAnalysts said the figures pointed to a recovery in manufacturing later this year, "
            "although energy prices remained a concern for exporters across the euro zone.\n\n"
            "The central bank is expected to keep interest rates unchanged at its next meeting.")
