"""The Go-template subset Prometheus alert labels and annotations use.

Supported: text with `{{ ... }}` actions (and `{{-` / `-}}` trimming); operands
`$value`, `.Value`, `$labels.name`, `.Labels.name`, string and number
literals; pipelines (`$value | humanize`) and calls (`printf "%.2f" $value`)
of humanize, humanize1024, humanizePercentage, humanizeDuration, printf,
toUpper, toLower, title. Anything else (if, range, with, define, other
functions) is refused when the rule loads, never rendered wrongly.
Numbers print as Go's `fmt` prints a float64.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(r'\s*("(?:[^"\\]|\\.)*"|`[^`]*`|\||[^\s|]+)')


class TemplateError(ValueError):
    pass


def go_float(x: float) -> str:
    """fmt.Sprint(float64): shortest digits; an exponent below 1e-4 and from 1e6 (Go's %v)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "-0" if math.copysign(1, x) < 0 else "0"
    sign, digits, exp = Decimal(repr(x)).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    e10 = len(digits) + int(exp) - 1  # decimal exponent of the first digit
    prefix = "-" if sign else ""
    if e10 < -4 or e10 >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'+' if e10 >= 0 else '-'}{abs(e10):02d}"
    if e10 >= 0:
        whole = text[: e10 + 1].ljust(e10 + 1, "0")
        frac = text[e10 + 1 :]
        return prefix + whole + ("." + frac if frac else "")
    return prefix + "0." + "0" * (-e10 - 1) + text


def _go_g4(v: float) -> str:
    """Go's %.4g."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    text = f"{v:.4g}"
    if "e" in text:
        mantissa, exp = text.split("e")
        return f"{mantissa}e{exp[0]}{exp[1:].rjust(2, '0')}"
    return text


def humanize(v: float) -> str:
    if v == 0 or math.isnan(v) or math.isinf(v):
        return _go_g4(v)
    prefix = ""
    if abs(v) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
        return _go_g4(v) + prefix
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return _go_g4(v) + prefix


def humanize1024(v: float) -> str:
    if abs(v) <= 1 or math.isnan(v) or math.isinf(v):
        return _go_g4(v)
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(v) < 1024:
            break
        prefix, v = p, v / 1024
    return _go_g4(v) + prefix


def humanize_percentage(v: float) -> str:
    return _go_g4(v * 100) + "%"


def humanize_duration(v: float) -> str:
    if math.isnan(v) or math.isinf(v):
        return _go_g4(v)
    if v == 0:
        return _go_g4(v) + "s"
    if abs(v) >= 1:
        sign = "-" if v < 0 else ""
        v = abs(v)
        d = int(v)
        seconds, minutes, hours, days = d % 60, d // 60 % 60, d // 3600 % 24, d // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_go_g4(v)}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return f"{_go_g4(v)}{prefix}s"


def _number(x: Any) -> float:
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            raise TemplateError(f"cannot convert {x!r} to a number") from None
    return float(x)


def _printf(fmt: str, *args: Any) -> str:
    out = []
    it = iter(args)

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "%%":
            return "%"
        spec, verb = m.group(1), m.group(2)
        try:
            arg = next(it)
        except StopIteration:
            return f"%!{verb}(MISSING)"
        if verb == "v":
            return go_float(arg) if isinstance(arg, float) else str(arg)
        if verb == "s":
            return (f"%{spec}s") % (go_float(arg) if isinstance(arg, float) else arg)
        if verb == "d":
            return (f"%{spec}d") % int(_number(arg))
        return (f"%{spec}{verb}") % _number(arg)

    out.append(re.sub(r"%%|%([-+ #0-9.]*)([vsdfeEgGxX])", one, fmt))
    return "".join(out)


FUNCTIONS: dict[str, Callable[..., str]] = {
    "humanize": lambda v: humanize(_number(v)),
    "humanize1024": lambda v: humanize1024(_number(v)),
    "humanizePercentage": lambda v: humanize_percentage(_number(v)),
    "humanizeDuration": lambda v: humanize_duration(_number(v)),
    "printf": _printf,
    "toUpper": lambda s: str(s).upper(),
    "toLower": lambda s: str(s).lower(),
    "title": lambda s: str(s).title(),
}


@dataclass(frozen=True)
class _Operand:
    kind: str  # value, label, labels, literal
    data: Any = None


def _operand(token: str) -> _Operand:
    if token in ("$value", ".Value"):
        return _Operand("value")
    for prefix in ("$labels.", ".Labels."):
        if token.startswith(prefix) and re.fullmatch(
            r"[a-zA-Z_][a-zA-Z0-9_]*", token[len(prefix) :]
        ):
            return _Operand("label", token[len(prefix) :])
    if token.startswith('"') and token.endswith('"') and len(token) >= 2:
        return _Operand("literal", bytes(token[1:-1], "utf-8").decode("unicode_escape"))
    if token.startswith("`") and token.endswith("`"):
        return _Operand("literal", token[1:-1])
    try:
        return _Operand("literal", float(token) if "." in token or "e" in token else int(token))
    except ValueError:
        raise TemplateError(f"unsupported template term {token!r}") from None


Command = tuple[str | None, list[_Operand]]  # (function or None, operands)


class Template:
    """A parsed template; `render(labels, value)` expands it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._parts: list[str | list[Command]] = []
        pos = 0
        for m in _ACTION.finditer(text):
            literal = text[pos : m.start()]
            if m.group(1):
                literal = literal.rstrip()
            self._parts.append(literal)
            self._parts.append(self._pipeline(m.group(2).strip()))
            pos = m.end()
            if m.group(3):
                rest = text[pos:]
                pos += len(rest) - len(rest.lstrip())
        self._parts.append(text[pos:])
        if "{{" in "".join(p for p in self._parts if isinstance(p, str)):
            raise TemplateError("unterminated template action")

    @staticmethod
    def _pipeline(source: str) -> list[Command]:
        if not source:
            raise TemplateError("empty template action")
        tokens = _TOKEN.findall(source)
        commands: list[list[str]] = [[]]
        for t in tokens:
            if t == "|":
                commands.append([])
            else:
                commands[-1].append(t)
        out: list[Command] = []
        for i, command in enumerate(commands):
            if not command:
                raise TemplateError(f"missing command in {source!r}")
            head = command[0]
            if head in FUNCTIONS:
                out.append((head, [_operand(t) for t in command[1:]]))
            elif head in ("if", "range", "with", "define", "template", "block", "else", "end"):
                raise TemplateError(f"template control {head!r} is not supported")
            elif len(command) == 1 and i == 0:
                out.append((None, [_operand(head)]))
            else:
                raise TemplateError(f"unsupported template function {head!r}")
        return out

    def render(self, labels: Mapping[str, str], value: float) -> str:
        out = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
                continue
            result: Any = None
            for i, (fn, operands) in enumerate(part):
                args = [self._resolve(o, labels, value) for o in operands]
                if i > 0:
                    args.append(result)
                result = args[0] if fn is None else FUNCTIONS[fn](*args)
            out.append(go_float(result) if isinstance(result, float) else str(result))
        return "".join(out)

    @staticmethod
    def _resolve(operand: _Operand, labels: Mapping[str, str], value: float) -> Any:
        if operand.kind == "value":
            return value
        if operand.kind == "label":
            return labels.get(operand.data, "")
        return operand.data
