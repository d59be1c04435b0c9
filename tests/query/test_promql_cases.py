"""Runs every `tests/query/cases/*.test` file against the real store and engine.

Each `load` is appended to a fresh store on disk; each `eval` runs through
`Engine` and must produce exactly the expected series (labels equal, values
within 1e-9 relative, NaN equal to NaN), or, for `eval_fail`, an error whose
message contains the expected text.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hakon.errors import HakonError
from hakon.query.engine import Engine, Result
from hakon.query.render import ordered_rows
from hakon.query.values import RangeSamples, Scalar, String, Vector
from hakon.store.catalog import Catalog
from hakon.store.engine import Store, StoreOptions
from hakon.store.interface import RAW, SampleBatch
from tests.query.promqltest import MISSING, Eval, Load, parse_file

CASES = sorted((Path(__file__).parent / "cases").glob("*.test"))
FOREVER = 10**14  # retention long enough for data loaded at the epoch


def load(store: Store, command: Load) -> None:
    labels, index, ts, values = [], [], [], []
    for i, (series_labels, points) in enumerate(command.series):
        labels.append(series_labels)
        for k, v in enumerate(points):
            if v is MISSING:
                continue
            index.append(i)
            ts.append(k * command.interval_ms)
            values.append(v)
    if index:
        store.append(SampleBatch.from_series(labels, index, ts, values))


def close_enough(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if a == b:
        return True
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b))


def got_series(result: Result) -> list[tuple[dict[str, str], list[object]]]:
    value = result.value
    if isinstance(value, Vector):
        rows = range(len(value.labels))
        if result.kind == "vector":
            rows = ordered_rows(value, result.order)
        out = []
        for r in rows:
            points = [
                float(value.values[r, k]) if value.present[r, k] else MISSING
                for k in range(value.values.shape[1])
            ]
            if any(p is not MISSING for p in points):
                out.append((dict(value.labels[r]), points))
        return out
    if isinstance(value, RangeSamples):
        return [
            (dict(ls), value.values[value.offsets[i] : value.offsets[i + 1]].tolist())
            for i, ls in enumerate(value.labels)
        ]
    raise AssertionError(f"unexpected result {value!r}")


def check(store: Store, ev: Eval, where: str) -> None:
    engine = Engine(store)
    try:
        if ev.instant:
            result = engine.instant(ev.expr, ev.at_ms)
        else:
            result = engine.range(ev.expr, ev.start_ms, ev.end_ms, ev.step_ms)
    except HakonError as exc:
        if ev.fail:
            assert ev.error is None or ev.error in exc.message, (
                f"{where}: got error {exc.message!r}"
            )
            return
        raise AssertionError(f"{where}: {ev.expr!r} failed: {exc.message}") from exc
    assert not ev.fail, f"{where}: {ev.expr!r} should have failed"
    if ev.scalar is not None:
        assert isinstance(result.value, Scalar), f"{where}: expected a scalar, got {result.kind}"
        assert close_enough(float(result.value.values[0]), ev.scalar), (
            f"{where}: {result.value.values[0]} != {ev.scalar}"
        )
        return
    assert not isinstance(result.value, String | Scalar), f"{where}: got {result.kind}"
    got = got_series(result)
    key = lambda s: sorted(s[0].items())  # noqa: E731
    if not ev.ordered:
        got.sort(key=key)
    expected = sorted(ev.expected, key=key) if not ev.ordered else ev.expected
    got_labels = [g[0] for g in got]
    want_labels = [e[0] for e in expected]
    assert got_labels == want_labels, f"{where}: {ev.expr!r}\n got {got}\nwant {expected}"
    for (labels, got_points), (_, want_points) in zip(got, expected, strict=True):
        if ev.instant and result.kind == "vector":
            got_points = [p for p in got_points if p is not MISSING]
        assert len(got_points) == len(want_points), (
            f"{where}: {ev.expr!r} {labels}: got {got_points}, want {want_points}"
        )
        for g, w in zip(got_points, want_points, strict=True):
            if g is MISSING or w is MISSING:
                assert g is w, (
                    f"{where}: {ev.expr!r} {labels}: got {got_points}, want {want_points}"
                )
            else:
                assert close_enough(float(g), float(w)), (  # type: ignore[arg-type]
                    f"{where}: {ev.expr!r} {labels}: got {got_points}, want {want_points}"
                )


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case_file(path: Path, tmp_path: Path) -> None:
    commands = parse_file(path.read_text())
    generation = 0
    s = _open(tmp_path, generation)
    try:
        for command in commands:
            if command == "clear":
                s.close()
                generation += 1
                s = _open(tmp_path, generation)
            elif isinstance(command, Load):
                load(s, command)
            else:
                assert isinstance(command, Eval)
                check(s, command, f"{path.name}:{command.line_no}")
    finally:
        s.close()


def _open(tmp_path: Path, generation: int) -> Store:
    data = tmp_path / f"data{generation}"
    options = StoreOptions(
        retention_ms={RAW: FOREVER, 300_000: FOREVER, 3_600_000: FOREVER},
        maintenance_interval_s=3600,
    )
    return Store(data, Catalog.open_in(data), options).open()
