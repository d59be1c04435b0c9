import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hakon.store.index import SeriesIndex
from hakon.store.labels import (
    Matcher,
    canonical,
    decode_labels,
    decode_many_labels,
    encode_labels,
    series_id,
)


def test_series_id_is_stable_and_order_independent() -> None:
    a = canonical({"__name__": "up", "job": "node", "instance": "a:9100"})
    b = canonical([("instance", "a:9100"), ("job", "node"), ("__name__", "up")])
    assert a == b
    # Pinned: a changed id would orphan every stored series.
    assert series_id(a) == series_id(b) == 7323424946777563153


def test_label_boundaries_cannot_collide() -> None:
    assert series_id(canonical({"a": "bc"})) != series_id(canonical({"ab": "c"}))
    assert series_id(canonical({"a": "1:b2:cc"})) != series_id(canonical({"a": "1", "b": "cc"}))


def test_empty_value_means_absent() -> None:
    assert canonical({"__name__": "up", "env": ""}) == canonical({"__name__": "up"})


SERIES = [
    {"__name__": "cpu", "pod": "a", "ns": "prod"},
    {"__name__": "cpu", "pod": "b", "ns": "dev"},
    {"__name__": "cpu", "pod": "c"},
    {"__name__": "mem", "pod": "a", "ns": "prod"},
]


@pytest.mark.parametrize(
    ("matchers", "expected"),
    [
        ([("__name__", "=", "cpu")], [0, 1, 2]),
        ([("__name__", "=", "cpu"), ("ns", "=", "prod")], [0]),
        ([("__name__", "=", "cpu"), ("ns", "!=", "prod")], [1, 2]),
        ([("__name__", "=", "cpu"), ("ns", "=", "")], [2]),
        ([("__name__", "=", "cpu"), ("ns", "!=", "")], [0, 1]),
        ([("__name__", "=~", "cpu|mem"), ("pod", "=", "a")], [0, 3]),
        ([("__name__", "=~", "c.*")], [0, 1, 2]),
        ([("__name__", "=~", "pu")], []),  # anchored
        ([("__name__", "=", "cpu"), ("ns", "!~", "pr.*")], [1, 2]),
        ([("__name__", "=", "cpu"), ("ns", "=~", "prod|")], [0, 2]),
        ([("pod", "=", "a"), ("__name__", "!=", "cpu")], [3]),
        ([("__name__", "=", "nope")], []),
    ],
)
def test_matchers_follow_prometheus(matchers: list, expected: list[int]) -> None:
    index = SeriesIndex()
    label_sets = [canonical(s) for s in SERIES]
    ids = [series_id(ls) for ls in label_sets]
    index.add(ids, label_sets)
    got = index.select([Matcher(*m) for m in matchers])
    assert sorted(got) == sorted(ids[i] for i in expected)


def test_bad_regex_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="invalid regex"):
        Matcher("a", "=~", "(")


def test_unknown_mask_covers_folded_and_recent_ids() -> None:
    import numpy as np

    index = SeriesIndex()
    index.add(range(60_000), [(("__name__", f"m{i}"),) for i in range(60_000)])
    index.add([70_000], [(("__name__", "x"),)])
    mask = index.unknown(np.array([5, 59_999, 70_000, 80_000, -1], dtype=np.int64))
    assert mask.tolist() == [False, False, False, True, True]


@given(
    st.lists(
        st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=4),
        min_size=1,
        max_size=12,
    )
)
def test_label_sets_added_as_texts_are_indexed_as_their_labels(label_sets) -> None:
    """The write path adds new series as `encode_labels` texts (some as tuples, from
    replay); selection, names and values see the labels once they are indexed, a slice
    of texts decoded at a time."""
    canon = [canonical({"__name__": "m", **ls}) for ls in label_sets]
    ids = [series_id(c) for c in canon]
    index = SeriesIndex()
    index.DECODE_SLICE = 3  # several slices, the last one short
    for k, (sid, labels) in enumerate(zip(ids, canon, strict=True)):
        index.add([sid], [encode_labels(labels) if k % 3 else labels])
    want = dict(zip(ids, canon, strict=True))
    if len(ids) % 2:
        index.index_pending()  # as maintenance does it, a slice per hold of the lock
    assert index.select([Matcher("__name__", "=", "m")]) == want
    assert all(index.labels(sid) == labels for sid, labels in want.items())
    names = sorted({n for labels in canon for n, _ in labels})
    assert index.label_names() == names


def test_maintenance_indexing_lets_writers_in_between_slices() -> None:
    """A burst of new series is indexed a slice at a time; a writer registering more
    series meanwhile waits for a slice, not for the whole burst."""
    events: list[str] = []

    def register_one() -> None:
        index.add([1], [(("a", "b"),)])
        events.append("add")

    writer = threading.Thread(target=register_one)

    class Recording(SeriesIndex):
        DECODE_SLICE = 2

        def _index(self, sids: list[int]) -> None:
            events.append("slice")
            if len(events) == 1:
                writer.start()  # blocks on the lock this slice holds
            time.sleep(0.01)
            super()._index(sids)

    index = Recording()
    labels = [(("__name__", "m"), ("i", str(i))) for i in range(40)]
    index.add([series_id(ls) for ls in labels], [encode_labels(ls) for ls in labels])
    index.index_pending()
    writer.join()
    assert "add" in events and events.index("add") < len(events) - 1, events
    assert len(index.select([Matcher("__name__", "=", "m")])) == 40
    assert index.labels(1) == (("a", "b"),)


def test_many_texts_decode_as_each_alone() -> None:
    texts = [encode_labels((("__name__", "a"), ("x", 'q"\\\u2028'))), encode_labels(())]
    assert decode_many_labels(texts) == [decode_labels(t) for t in texts]
    with pytest.raises(ValueError):
        decode_many_labels([*texts, b'[["x"]'])
