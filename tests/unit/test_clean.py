"""The cleaning processor: boilerplate goes, real sentences stay."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream import Article, ConfigError, Context
from stream.settings import Settings
from stream_clean import CleanProcessor
from stream_clean.cleaner import clean
from stream_clean.rules import load_rules

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "articles"
RULES = load_rules()


def cleaned(text: str) -> str:
    return clean(text, RULES).text


def sample(prefix: str) -> str:
    [path] = EXAMPLES.glob(f"{prefix}_*.txt")
    return cleaned(path.read_text())


# -- the sample articles: what goes and what stays, read off each article ---------------

SAMPLES = {
    "000": (
        ["Pages", "After the Lavrov-Blinken meeting: Moscow is Waiting",
         "Russia's Foreign Ministry: NATO forces Must be Withdrawn"],
        ["Russian President Vladimir Putin on Tuesday accused the U.S. and its allies",
         "U.S. top diplomat Antony Blinken will join a meeting of his EU counterparts by video-link.",
         "NATO rejects Russia's demand for the withdrawal of Alliance troops from Bulgaria and Romania",
         "quoted by TASS."],
    ),
    "001": (
        ["(This story was not edited", "Christi C. Elwood", "RT. ."],
        ["Russian Foreign Minister Sergei Lavrov said on Wednesday he expects negotiations",
         "Moscow last week presented its demands to the United States and NATO",
         "in an interview with Russian news network RT.",
         "whatever means we deem appropriate,” Lavrov told a panel of RT reporters."],
    ),
    "002": (
        [" date 2022-01-22", "date 2022"],
        ["Russia and the United States agreed for Washington to provide written answers",
         "Prior to the talks, Blinken and Lavrov shook hands at the President Wilson Hotel",
         "condemned in political declarations by Democratic Bulgaria and GERB."],
    ),
    "003": (
        ["Read also", "Editor: Marco Badea", "Source Link", "To Your Inbox", "We don’t spam",
         "Photo: Profimedia Images", "negotiationsLavrov", "moveLavrov"],
        ["wants a detailed written response to every proposal expressed in the negotiations Lavrov said.",
         "Moscow announced on Friday an unforeseen inspection of the combat readiness",
         "Russia has said it is free to decide where to move its troops and that there are no external threats.",
         "EU High Representative for Foreign Affairs Josep Borrell on Thursday assured"],
    ),
    "004": (
        ["Prince Harry", "Selena Gomez", "Brooks Nader Reveals", "Valentine", "\n-\n"],
        ["MOSCOW: Russian President Vladimir Putin said Tuesday",
         "Foreign Minister Sergei Lavrov also told his new German counterpart Annalena Baerbock",
         "Tens of thousands of Russian troops are stationed near the borders of ex-Soviet Ukraine"],
    ),
}


@pytest.mark.parametrize("prefix", sorted(SAMPLES))
def test_sample_article_loses_its_boilerplate_and_keeps_its_sentences(prefix: str) -> None:
    text = sample(prefix)
    gone, kept = SAMPLES[prefix]
    for fragment in gone:
        assert fragment not in text, f"{fragment!r} should be gone"
    for fragment in kept:
        assert fragment in text, f"{fragment!r} should stay"


def test_the_standfirst_repeated_in_the_body_appears_once() -> None:
    assert sample("001").count("Russia has been accused by the West of planning an invasion of Ukraine.") == 1


def test_the_leading_date_moves_into_published_at() -> None:
    [path] = EXAMPLES.glob("002_*.txt")
    a = Article(id="002", text=path.read_text())
    proc = CleanProcessor()
    proc.setup(Context(settings=Settings()))
    proc.process([a])
    assert a.published_at == "2022-01-22"
    assert a.clean_text.startswith("Russia and the United States agreed")
    b = Article(id="x", text=" date 2022-01-22 Text.", published_at="2021-01-01")
    proc.process([b])
    assert b.published_at == "2021-01-01"


def test_paragraph_breaks_stay_and_whitespace_within_collapses() -> None:
    assert cleaned("First   para\twith  spaces.\n\n\n\nSecond para.") == "First para with spaces.\n\nSecond para."


def test_a_hard_wrapped_sentence_is_joined() -> None:
    assert cleaned("The minister said that\nthe talks would go on.") == "The minister said that the talks would go on."


# -- each kind of boilerplate -------------------------------------------------------------

BODY = "The foreign ministers met in Geneva on Friday for talks that lasted six hours."


@pytest.mark.parametrize(
    "noise",
    [
        "Read also: Stoltenberg warns of real risk of conflict",
        "Related: Five things to know about the talks",
        "See also – NATO summit schedule",
        "Photo: Reuters/John Smith",
        "The minister at a press conference in Moscow. Photo: Profimedia Images",
        "By Jane Doe",
        "Reporting by Jane Doe; Editing by John Roe",
        "Editor: Marco Badea",
        "(This story was not edited by The Example News on social platforms.)",
        "Share this article",
        "Follow us on Twitter",
        "We use cookies to improve your experience. Accept cookies",
        "Advertisement",
        "Sign up for our daily newsletter",
        "Example News To Your Inbox!",
        "We don’t spam! Read our privacy policy for more info.",
    ],
)
def test_each_kind_of_boilerplate_is_removed(noise: str) -> None:
    out = cleaned(f"{BODY}\n\n{noise}\n\nThe talks will resume next week in Vienna, officials said.")
    assert noise not in out
    assert BODY in out and "The talks will resume next week in Vienna, officials said." in out


@pytest.mark.parametrize("tail", ["Pages", "Source Link", "Christi C. Elwood", "Comments\n\nShare"])
def test_navigation_words_and_bylines_at_the_end_are_removed(tail: str) -> None:
    assert cleaned(f"{BODY}\n\n{tail}\n") == BODY


def test_a_list_of_related_headlines_is_removed_but_a_single_subheading_stays() -> None:
    text = (f"{BODY}\n\nTroops return to barracks\n\nThe defence ministry confirmed the move.\n\n"
            "Celebrity Wedding Shocks Fans -\nStocks Rally On Friday -\nNew Phone Unveiled\n")
    out = cleaned(text)
    assert "Troops return to barracks" in out
    assert "Celebrity Wedding" not in out and "Stocks Rally" not in out and "New Phone" not in out


def test_html_is_reduced_to_text_and_scripts_never_pass_through() -> None:
    out = cleaned("<p>Troops &amp; tanks moved.</p><script>alert('x')</script><p>Talks&nbsp;resume.</p>")
    assert out == "Troops & tanks moved.\n\nTalks resume."


def test_mojibake_is_repaired_and_text_is_nfc() -> None:
    mojibake = "The minister\u00e2\u20ac\u2122s visit to Montr\u00c3\u00a9al."
    assert cleaned(mojibake) == "The minister’s visit to Montréal."
    assert cleaned("Cafe\u0301 talks.") == "Caf\u00e9 talks."


def test_invisible_characters_cannot_hide_a_word() -> None:
    assert cleaned("in\u200bva\u2060sion of\u202e Ukraine\ufeff.") == "invasion of Ukraine."


@pytest.mark.parametrize(
    "text",
    [
        "The minister said the talks were useful.",
        "Troops moved at dawn.\n\nOfficials said the move was planned.",
        "“We will respond,” he said.",
        "By the end of the week, the troops had withdrawn.",
        "Related talks are planned for March, officials said.",
        "Photographers gathered outside the ministry.",
        "The iPhone and eBay were mentioned, as was McDonald's.",
        "Share prices fell sharply on Monday after the announcement.",
    ],
)
def test_real_text_comes_through_untouched(text: str) -> None:
    assert cleaned(text) == text


def test_a_user_rules_file_adds_rules(tmp_path: Path) -> None:
    rules = tmp_path / "mine.toml"
    rules.write_text('[[drop]]\nname = "promo"\npattern = "^Download our app"\nmax_words = 20\n')
    proc = CleanProcessor()
    proc.setup(Context(settings=Settings(), config={"rules_file": str(rules)}))
    a = Article(id="a", text=f"{BODY}\n\nDownload our app today!\n\nMore real text follows here, he said.")
    proc.process([a])
    assert "Download" not in a.clean_text and BODY in a.clean_text


def test_a_bad_rules_file_names_the_file_the_line_and_the_problem(tmp_path: Path) -> None:
    rules = tmp_path / "bad.toml"
    rules.write_text('[[drop]]\nname = "broken"\npattern = "(unclosed"\nmax_words = 5\n')
    with pytest.raises(ConfigError, match=r"bad.toml:3: \[\[drop\]\] rule 'broken': invalid regular expression"):
        load_rules(rules)


# -- properties -----------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_cleaning_never_raises_and_leaves_no_invisible_or_control_characters(text: str) -> None:
    out = cleaned(text)
    assert not any(ch in out for ch in "\u200b\u200e\u200f\u202a\u202e\u2066\u2069\ufeff\u00ad")
    assert all(ch == "\n" or ord(ch) >= 32 for ch in out)
    assert "\n\n\n" not in out and out == out.strip()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["The talks went on.", "Troops moved.", "He said no.", "Officials agreed."]),
                min_size=1, max_size=6))
def test_cleaning_is_idempotent_on_clean_text(sentences: list[str]) -> None:
    once = cleaned("\n\n".join(sentences))
    assert cleaned(once) == once


# -- ftfy runs only where it has work: the same result as running it always ------------------

WORDS = ["The", "minister’s", "visit", "to", "Montréal", "«", "déjà", "vu", "»", "Größe", "straße",
         "привет", "Россия", "Київ", "café", "naïve", "São", "Paulo", "—", "…", "“quoted”", "ﬁnal",
         "ＡＢＣ", "Ústí", "Łódź", "İstanbul", "Ελλάδα", "\u00a0", "résumé", "co\u0301te"]


def _always_ftfy(text: str) -> str:
    import ftfy

    from stream_clean import cleaner

    fixed = ftfy.fix_text(text, uncurl_quotes=False, normalization="NFC")
    return cleaner._REMOVED.sub("", fixed.replace("\r\n", "\n").replace("\r", "\n"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12),
       st.sampled_from([None, "latin-1", "cp1252", "cp1251"]))
def test_skipping_ftfy_where_it_has_no_work_changes_nothing(words: list[str], misread_as: str | None) -> None:
    from stream_clean.cleaner import normalize

    text = " ".join(words)
    if misread_as:  # mojibake: UTF-8 bytes read in a legacy encoding
        text = text.encode("utf-8").decode(misread_as, errors="replace")
    assert normalize(text) == _always_ftfy(text)


# -- the fast paths of the cleaner give what the regular expressions they replace gave ---------

_TERMINAL = re.compile(r"[.!?…][\"'”’»)\]]*$|[\"”’»]$")


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab .!?…\"'”’»)]\n")), max_size=12))
def test_ends_sentence_is_the_terminal_pattern(text: str) -> None:
    from stream_clean.cleaner import _ends_sentence

    assert _ends_sentence(text) == bool(_TERMINAL.search(text))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*list("aZé .,;:!?”-"), "wordGlued", "said. .", "x ,"]), max_size=40).map("".join))
def test_repair_triggers_miss_nothing(text: str) -> None:
    """A paragraph's spaces are single by the time it is repaired: the triggers are byte
    tests, checked here against running every pattern always."""
    from stream_clean.cleaner import _CLOSE_QUOTE_GLUED, _DOUBLE_PERIOD, _GLUED, _SPACE_BEFORE_PUNCT, _repair

    text = re.sub(" +", " ", text)

    always = _CLOSE_QUOTE_GLUED.sub("” ", text)
    always = _SPACE_BEFORE_PUNCT.sub(r"\1", always)
    always = _DOUBLE_PERIOD.sub(".", always)
    always = _GLUED.sub(r"\1 \2", always)
    assert _repair(text) == always.strip()


def test_old_mac_line_breaks_keep_lines_apart() -> None:
    text = "Troops moved north on Monday, officials said.\rThe talks resumed in Geneva on Tuesday morning."
    assert clean(text, RULES).text.split("\n\n") == [
        "Troops moved north on Monday, officials said.", "The talks resumed in Geneva on Tuesday morning."]
