"""Regular expressions from users (PromQL matchers, `label_replace`), matched in linear time.

Prometheus compiles these with Go's `regexp`, which is RE2: no backreferences
or lookaround, and a match costs time linear in the input. Python's `re`
backtracks, so a pattern such as `(a+)+` against a long label value would hold
a core (and the GIL) for minutes. RE2 itself gives both the same syntax as
Prometheus and the same guarantee.

Patterns are fully anchored with `.` matching newlines, as in Prometheus.
The common shapes Grafana sends (a literal, `a|b|c`, `prefix.*`, `.*`) are
answered with plain string operations: a call into RE2 costs about a
microsecond, a string comparison a tenth of that, and an index matches a
pattern against every value of a label.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import re2

_META = frozenset("\\.+*?()|[]{}^$")
_OPTIONS = re2.Options()
_OPTIONS.dot_nl = True
_OPTIONS.log_errors = False  # a bad pattern is the user's 400, not a line in our log
_TEST_OPTIONS = re2.Options()
_TEST_OPTIONS.dot_nl = True
_TEST_OPTIONS.log_errors = False
_TEST_OPTIONS.never_capture = True


class RegexError(ValueError):
    """The pattern is not valid RE2 syntax (what Prometheus accepts)."""


def _literal(text: str) -> bool:
    return not any(c in _META for c in text)


def _fast_test(pattern: str) -> Callable[[str], bool] | None:
    """A string operation equal to a full match of `pattern`, for the shapes that have one."""
    if _literal(pattern):
        return pattern.__eq__
    if pattern == ".*":
        return lambda value: True
    if pattern == ".+":
        return bool
    body = pattern
    for opening in ("(?:", "("):
        if body.startswith(opening) and body.endswith(")"):
            body = body[len(opening) : -1]
            break
    options = body.split("|")
    if len(options) > 1 and all(_literal(o) for o in options):
        choices = frozenset(options)
        return choices.__contains__
    if pattern.endswith(".*") and _literal(pattern[:-2]):
        prefix = pattern[:-2]
        return lambda value: value.startswith(prefix)
    if pattern.startswith(".*") and pattern.endswith(".*") and _literal(pattern[2:-2]):
        part = pattern[2:-2]
        return lambda value: part in value
    if pattern.startswith(".*") and _literal(pattern[2:]):
        suffix = pattern[2:]
        return lambda value: value.endswith(suffix)
    return None


class Regex:
    """One compiled user pattern: `test` for matchers, `fullmatch` for capture groups."""

    __slots__ = ("_anchor", "_compiled", "_raw", "_test", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        try:
            self._compiled: Any = re2.compile(pattern, _OPTIONS)
            tester = re2.compile(pattern, _TEST_OPTIONS)
        except re2.error as exc:
            detail = exc.args[0] if exc.args else exc
            if isinstance(detail, bytes):
                detail = detail.decode("utf-8", "replace")
            raise RegexError(f"invalid regex {pattern!r}: {detail}") from None
        # RE2's own match call: the module's Python wrapper around it costs 4x more per
        # call (it maps byte offsets back to characters, which a yes/no never needs).
        raw = getattr(tester, "_regexp", None)
        anchor = getattr(getattr(getattr(re2, "_re2", None), "RE2", None), "Anchor", None)
        self._raw = raw if raw is not None and anchor is not None else None
        self._anchor = anchor.ANCHOR_BOTH if anchor is not None else None
        self._test = _fast_test(pattern)

    def test(self, value: str) -> bool:
        """Whether the whole of `value` matches."""
        if self._test is not None:
            return self._test(value)
        if self._raw is not None:
            data = value.encode("utf-8", "surrogatepass")
            return self._raw.Match(self._anchor, data, 0, len(data))[0][0] >= 0
        return self._compiled.fullmatch(value) is not None

    def fullmatch(self, value: str) -> Any:
        """The match with its groups (`.group(1)`, `.group("name")`), or None."""
        return self._compiled.fullmatch(value)
