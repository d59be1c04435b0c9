"""User regexes: Prometheus's (RE2) syntax, full anchoring, and no catastrophic backtracking."""

from __future__ import annotations

import threading
import time

import pytest
import re2
from hypothesis import given
from hypothesis import strategies as st

from hakon.store.labels import Matcher
from hakon.store.regex import Regex, RegexError

CASES = [
    # pattern, value, full match?
    ("foo", "foo", True),
    ("foo", "foobar", False),
    ("ns-1.*", "ns-10", True),
    ("ns-1.*", "xns-1", False),
    (".*-1", "ns-1", True),
    (".*oo.*", "food", True),
    ("a|b|c", "b", True),
    ("a|b|c", "ab", False),
    ("(a|b)", "a", True),
    ("(?:api|web)", "web", True),
    (".*", "", True),
    (".+", "", False),
    (".+", "\n", True),  # `.` matches newlines, as in Prometheus
    ("a.c", "a\nc", True),
    ("(?i)FOO", "foo", True),
    ("[0-9]+", "123", True),
    ("[0-9]+", "12a", False),
    ("\\d{3}", "123", True),
    ("é.", "éx", True),
    ("a|ab", "ab", True),  # anchored on both ends, not leftmost-first then checked
    ("", "", True),
    ("", "x", False),
]


@pytest.mark.parametrize(("pattern", "value", "expected"), CASES)
def test_full_match_like_prometheus(pattern: str, value: str, expected: bool) -> None:
    assert Regex(pattern).test(value) is expected
    assert Matcher("l", "=~", pattern).matches(value) is expected
    assert Matcher("l", "!~", pattern).matches(value) is not expected


@pytest.mark.parametrize("pattern", ["(?<=a)b", "(a)\\1", "a{2,1}", "(", "[z-a]"])
def test_what_go_rejects_is_rejected(pattern: str) -> None:
    with pytest.raises(RegexError, match="invalid regex"):
        Regex(pattern)


def test_groups_for_label_replace() -> None:
    m = Regex("(?P<svc>[a-z]+)-(\\d+)").fullmatch("api-12")
    assert (m.group(1), m.group(2), m.group("svc")) == ("api", "12", "api")
    assert Regex("(a)(b)?").fullmatch("a").group(2) is None


@pytest.mark.parametrize("pattern", ["(a+)+", "(a|aa)+", "(.*a){12}", "(a*)*b"])
def test_a_hostile_pattern_answers_at_once(pattern: str) -> None:
    """Each of these takes Python's backtracking `re` minutes or more on this value."""
    value = "a" * 4096 + "!"
    result: list[bool] = []
    worker = threading.Thread(target=lambda: result.append(Regex(pattern).test(value)), daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), f"{pattern} still matching after 10 s"
    assert result == [False]
    assert time.monotonic() - started < 10


literal = st.text(alphabet="abc-_x1", max_size=4)
shapes = st.one_of(
    literal,
    literal.map(lambda s: s + ".*"),
    literal.map(lambda s: ".*" + s),
    literal.map(lambda s: ".*" + s + ".*"),
    st.lists(literal, min_size=2, max_size=4).map("|".join),
    st.lists(literal, min_size=2, max_size=4).map(lambda o: "(" + "|".join(o) + ")"),
    st.lists(literal, min_size=2, max_size=4).map(lambda o: "(?:" + "|".join(o) + ")"),
    st.sampled_from([".*", ".+"]),
)
_PLAIN = re2.Options()
_PLAIN.dot_nl = True


@given(pattern=shapes, value=st.text(alphabet="abc-_x1\n", max_size=8))
def test_string_shortcuts_agree_with_re2(pattern: str, value: str) -> None:
    """The fast shapes are answered without RE2; they must give RE2's answer."""
    assert Regex(pattern).test(value) is (re2.compile(pattern, _PLAIN).fullmatch(value) is not None)
