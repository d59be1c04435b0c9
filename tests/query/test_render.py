"""The Prometheus API's text forms: values like Go's FormatFloat, matrices in pieces."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hakon.query import render
from hakon.query.values import Vector


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (0.5, "0.5"),
        (-2.0, "-2"),
        (1e-7, "1e-07"),
        (2.5e-6, "0.0000025"),
        (1e21, "1e+21"),
        (1.5e22, "1.5e+22"),
        (1e16, "10000000000000000"),
        (123456789012345.5, "123456789012345.5"),
        (3.0000000000000004, "3.0000000000000004"),
        (math.nan, "NaN"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (-0.0, "-0"),
    ],
)
def test_values_format_like_go(value: float, text: str) -> None:
    assert render.format_value(value) == text
    assert render.format_values(np.array([value])) == [text]


def test_times_keep_milliseconds() -> None:
    assert render.format_times(np.array([0, 1000, 1500, 2000])) == ["0", "1", "1.500", "2"]


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 1 << 16])
def test_a_matrix_rendered_in_pieces_is_the_same_json(
    monkeypatch: pytest.MonkeyPatch, piece: int
) -> None:
    monkeypatch.setattr(render, "RENDER_PIECE_POINTS", piece)
    rng = np.random.default_rng(piece)
    for _ in range(30):
        s, t = int(rng.integers(1, 6)), int(rng.integers(1, 5))
        present = rng.random((s, t)) > 0.4
        vector = Vector([(("a", str(i)),) for i in range(s)], rng.random((s, t)), present)
        got = json.loads(render.matrix_json(vector, np.arange(t) * 1000))
        want = [
            {
                "metric": {"a": str(i)},
                "values": [
                    [k, render.format_value(float(vector.values[i, k]))]
                    for k in range(t)
                    if present[i, k]
                ],
            }
            for i in range(s)
            if present[i].any()
        ]
        assert got == want
