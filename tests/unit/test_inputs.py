from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from stream.errors import ConfigError
from stream.runtime.inputs import read_inputs


def test_a_txt_file_is_one_article_titled_by_its_first_line(tmp_path: Path) -> None:
    f = tmp_path / "abc-1.txt"
    f.write_text("\n\n  Troops mass at border \nBody text.\n")
    [rec] = list(read_inputs([str(f)]))
    data = orjson.loads(rec.value)
    assert data["id"] == "abc-1" and rec.key == b"abc-1"
    assert data["title"] == "Troops mass at border"
    assert "Body text." in data["text"]


def test_jsonl_lines_are_passed_on_as_their_exact_bytes(tmp_path: Path) -> None:
    f = tmp_path / "feed.jsonl"
    f.write_bytes(b'{"id": "a", "text": "x"}\n\n{broken\n')
    recs = list(read_inputs([str(f)]))
    assert [r.value for r in recs] == [b'{"id": "a", "text": "x"}', b"{broken"]
    assert recs[0].key == b"a" and recs[1].key is None


def test_a_json_file_may_hold_a_list(tmp_path: Path) -> None:
    f = tmp_path / "two.json"
    f.write_text('[{"text": "a"}, {"text": "b", "id": "b"}]')
    assert [orjson.loads(r.value)["text"] for r in read_inputs([str(f)])] == ["a", "b"]


def test_an_unsupported_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text("x")
    with pytest.raises(ConfigError, match=r"unsupported file type \.csv"):
        list(read_inputs([str(f)]))


def test_a_first_line_that_is_a_paragraph_is_no_title() -> None:
    from stream.runtime.inputs import title_of

    paragraph = ("Russian Foreign Minister Sergei Lavrov told a news conference on Friday that Russia was "
                 "preparing for any change in the situation, while awaiting a response from the United States "
                 "and NATO on security guarantees. He said Moscow would not wait forever.")
    assert title_of(paragraph + "\n\nMore text.") is None  # long, several sentences
    assert title_of("date 2022-01-22 Russia and the United States agreed on written answers. The talks in "
                    "Geneva lasted an hour and a half.\nMore.") is None  # two sentences
    assert title_of("Soaring tensions between Moscow, West: Putin wants urgent talks with US, NATO over "
                    "security guarantees\nMOSCOW: ...") == ("Soaring tensions between Moscow, West: Putin wants "
                                                            "urgent talks with US, NATO over security guarantees")
    headline = "U.S. and Russia to meet in Geneva on Jan. 10"
    assert title_of(headline + "\nbody") == headline
    assert title_of("Only one line, the whole article.") is None  # nothing after it: it is the text
