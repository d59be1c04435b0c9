"""Merging sample parts: sort by (series, timestamp) and keep the last write.

Parts are given oldest first; a stable sort keeps that order among equal
(series, timestamp) pairs, so keeping the last of each run of duplicates is
"last write wins" across head, blocks and replays alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hakon.store.interface import Samples

EMPTY_I64 = np.empty(0, dtype=np.int64)
EMPTY_F64 = np.empty(0, dtype=np.float64)
EMPTY = Samples(EMPTY_I64, EMPTY_I64, EMPTY_F64)

Part = tuple[np.ndarray, np.ndarray, np.ndarray]


def sort_dedup(series: np.ndarray, ts: np.ndarray, values: np.ndarray) -> Samples:
    if len(ts) == 0:
        return EMPTY
    order, series, ts = _order(series, ts)
    values = values[order]
    keep = np.empty(len(ts), dtype=bool)
    keep[-1] = True
    np.not_equal(series[1:], series[:-1], out=keep[:-1])
    keep[:-1] |= ts[1:] != ts[:-1]
    if keep.all():
        return Samples(series, ts, values)
    return Samples(series[keep], ts[keep], values[keep])


def _order(series: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stable (series, ts) order (equal keys keep arrival order), with the series and
    timestamps in that order."""
    # Parts are concatenated sorted runs, usually in time order: a stable sort by
    # series alone (timsort merges the runs) is then already in (series, ts) order.
    by_series = np.argsort(series, kind="stable")
    s, t = series[by_series], ts[by_series]
    same = s[1:] == s[:-1]
    if not (t[1:][same] < t[:-1][same]).any():
        return by_series, s, t
    # Some series go back in time (rewrites, late samples). Each series' rows are
    # together now, in arrival order: sort by (series' place, time) from there. The
    # key is nearly sorted, so this second stable sort takes a tenth of the first
    # (1 M rows of a head seal with rewrites: 3.5 against 34 ms; sorting arrival
    # order again by both keys took 36 ms).
    lo = int(t.min())
    bits = max(1, (int(t.max()) - lo).bit_length())
    place = np.empty(len(s), dtype=np.int64)
    place[0] = 0
    np.cumsum(~same, out=place[1:])
    if bits + max(1, int(place[-1]).bit_length()) <= 62:
        within = np.argsort((place << bits) | (t - lo), kind="stable")
        return by_series[within], s[within], t[within]
    order = np.lexsort((ts, series))  # times 2^42 ms (140 years) apart, a million series
    return order, series[order], ts[order]


def merge_parts(parts: Sequence[Part], ids: np.ndarray | None = None) -> Samples:
    """Merge parts (oldest first) into one sorted, deduplicated set.

    Sorted parts (head runs, blocks) are laid out series by series without sorting
    (`_interleave`, linear); unsorted ones after them (the head's tail) are sorted
    into one part first. A series' rows from later parts usually come later in time
    (runs are cut in arrival order), so the layout is almost always in (series,
    time) order already; when it is not (late samples, rewrites), it is sorted from
    there, which keeps the oldest-first order among equal keys.
    """
    parts = [p for p in parts if len(p[1])]
    if not parts:
        return EMPTY
    if len(parts) > MAX_LAID_PARTS:  # the layout costs a pass over every key per part
        parts = _fold_small(parts)
        if len(parts) > MAX_LAID_PARTS:
            return _sort_parts(parts)
    ordered = [_is_sorted_unique(p[0], p[1]) for p in parts]
    if len(parts) == 1 and ordered[0]:
        s, t, v = parts[0]
        return Samples(s, t, v)
    # Sorted parts first, then unsorted ones: any other mix is sorted whole, as the
    # unsorted part must keep its place in the oldest-first order.
    sorted_prefix = ordered.index(False) if False in ordered else len(parts)
    if sorted_prefix == 0 or any(ordered[sorted_prefix:]):
        return _sort_parts(parts)
    runs = list(parts[:sorted_prefix])
    if sorted_prefix < len(parts):
        rest = _sort_parts(parts[sorted_prefix:])
        runs.append((rest.series, rest.timestamps, rest.values))
    if len(runs) == 1:
        s, t, v = runs[0]
        return Samples(s, t, v)
    laid = _interleave(runs, ids)
    if _is_sorted_unique(laid.series, laid.timestamps):
        return laid
    return sort_dedup(laid.series, laid.timestamps, laid.values)


MAX_LAID_PARTS = 64


def _fold_small(parts: list[Part], sort: bool = True) -> list[Part]:
    """Each stretch of consecutive small parts sorted into one (or, with `sort=False`,
    joined in order); large parts kept.

    A head's flush gets its sorted runs (1 M rows each) and the hundreds of request
    chunks of its tail: sorting all of it again (24 M rows: 5.3 s, most of the flush)
    is not needed to merge the chunks, only to merge them into one run. Consecutive
    parts only, so the oldest-first order that decides the last write stays.
    """
    small = sum(len(p[1]) for p in parts) // MAX_LAID_PARTS
    out: list[Part] = []
    stretch: list[Part] = []
    for part in [*parts, None]:
        if part is not None and len(part[1]) < small:
            stretch.append(part)
            continue
        if len(stretch) == 1:
            out.append(stretch[0])
        elif stretch and sort:
            merged = _sort_parts(stretch)
            out.append((merged.series, merged.timestamps, merged.values))
        elif stretch:
            s, t, v = (np.concatenate(column) for column in zip(*stretch, strict=True))
            out.append((s, t, v))
        stretch = []
        if part is not None:
            out.append(part)
    return out


def _sort_parts(parts: Sequence[Part]) -> Samples:
    return sort_dedup(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def _interleave(parts: Sequence[Part], ids: np.ndarray | None = None) -> Samples:
    """Lay sorted parts out series by series without sorting: each series' rows from
    part 0, then part 1, ... land at computed positions (one scatter per column).
    `ids`, when given, are the sorted unique ids the parts' series are drawn from."""
    keys = ids if ids is not None else np.unique(np.concatenate([_distinct(p[0]) for p in parts]))
    counts = [
        np.searchsorted(p[0], keys, side="right") - np.searchsorted(p[0], keys, side="left")
        for p in parts
    ]
    per_series = np.sum(counts, axis=0)
    start = np.zeros(len(keys), dtype=np.int64)
    np.cumsum(per_series[:-1], out=start[1:])
    total = int(per_series.sum())
    series = np.empty(total, dtype=np.int64)
    ts = np.empty(total, dtype=np.int64)
    values = np.empty(total, dtype=np.float64)
    before = np.zeros(len(keys), dtype=np.int64)
    for (s, t, v), count in zip(parts, counts, strict=True):
        part_start = np.zeros(len(keys), dtype=np.int64)
        np.cumsum(count[:-1], out=part_start[1:])
        dest = np.repeat(start + before - part_start, count) + np.arange(len(t))
        series[dest] = s
        ts[dest] = t
        values[dest] = v
        before += count
    return Samples(series, ts, values)


def _distinct(sorted_series: np.ndarray) -> np.ndarray:
    """The distinct values of a sorted array, in one pass."""
    if len(sorted_series) < 2:
        return sorted_series
    first = np.empty(len(sorted_series), dtype=bool)
    first[0] = True
    np.not_equal(sorted_series[1:], sorted_series[:-1], out=first[1:])
    return sorted_series[first]


def _is_sorted_unique(series: np.ndarray, ts: np.ndarray) -> bool:
    if len(ts) < 2:
        return True
    # Compare, never subtract: ids span the whole int64 range and differences overflow.
    if (series[1:] < series[:-1]).any():
        return False
    same = series[1:] == series[:-1]
    return bool((ts[1:][same] > ts[:-1][same]).all())


def run_starts(series: np.ndarray) -> np.ndarray:
    """Whether each row starts a run of one series (rows sorted by series)."""
    starts = np.empty(len(series), dtype=bool)
    if len(series):
        starts[0] = True
        np.not_equal(series[1:], series[:-1], out=starts[1:])
    return starts


# Rows a block writer encodes or rolls up at a time. numpy's temporaries of a piece
# this size come back from the allocator's free lists; those of a whole 24 M-row
# block were fresh pages every time, and the kernel zeroing them was most of a block
# writer's CPU (perf: clear_page_erms).
PIECE_ROWS = 1 << 20


def merge_in_pieces(parts: Sequence[Part], rows: int = PIECE_ROWS) -> Samples:
    """`merge_parts` of the parts, done range of series ids by range (about `rows` rows
    each) and joined: the same result, as a series' rows all fall in one range and
    last-write-wins is decided per series.

    Why: a block writer merging a whole 20 M-sample head sorted it in arrays of the
    whole size (1.2 GB of temporaries where scrapes were rewritten), fresh pages
    every time. On this VM first-touched memory is slow (0.15-4.5 s per GB, the
    host backing pages the guest gave back) and stalls the vCPU whatever the
    process's priority: the server's requests queued behind the niced block writer
    (p99 0.3-1.5 s at 80 % load in a flush). A piece's temporaries come back from
    the allocator's free lists for the next piece."""
    parts = [p for p in parts if len(p[1])]
    total = sum(len(p[1]) for p in parts)
    if total <= rows:
        return merge_parts(parts)
    if len(parts) > MAX_LAID_PARTS:
        # A head's hundreds of request chunks are cut into ranges once, not each.
        parts = _fold_small(parts, sort=False)
    cuts = _series_cuts([p[0] for p in parts], -(-total // rows))
    grouped = [_grouped_by_range(p, cuts) for p in parts]
    pieces = []
    for k in range(len(cuts) + 1):
        piece = [tuple(column[at[k] : at[k + 1]] for column in part) for part, at in grouped]
        merged = merge_parts(piece)  # type: ignore[arg-type]
        if len(merged):
            pieces.append(merged)
    return join(pieces)


def join(pieces: Sequence[Samples]) -> Samples:
    """Samples of disjoint ranges of series, in increasing order, one after the other."""
    if not pieces:
        return EMPTY
    if len(pieces) == 1:
        return pieces[0]
    return Samples(
        np.concatenate([p.series for p in pieces]),
        np.concatenate([p.timestamps for p in pieces]),
        np.concatenate([p.values for p in pieces]),
    )


def _series_cuts(series: Sequence[np.ndarray], pieces: int) -> list[int]:
    """Up to `pieces - 1` distinct ids cutting the parts' rows into ranges of about equal
    rows, from a sample of every part's ids."""
    total = sum(len(s) for s in series)
    step = max(1, total // (64 * pieces))
    sample = np.sort(np.concatenate([s[::step] for s in series]))
    at = (np.arange(1, pieces) * len(sample)) // pieces
    return np.unique(sample[at]).tolist()


def _grouped_by_range(part: Part, cuts: list[int]) -> tuple[Part, np.ndarray]:
    """The part with its rows grouped by range of series ids ([-inf, cuts[0]), ...), each
    range's rows in their order in the part, and where each range starts (plus the
    end). A part sorted by series is that already: only the starts are searched."""
    s, t, v = part
    edges = np.asarray(cuts, dtype=np.int64)
    if len(s) < 2 or not (s[1:] < s[:-1]).any():
        at = np.searchsorted(s, edges, side="left")
        return part, np.concatenate(([0], at, [len(s)]))
    which = np.searchsorted(edges, s, side="right").astype(np.int16)  # < 2^15 ranges
    order = np.argsort(which, kind="stable")  # a radix sort for 16-bit keys
    counts = np.bincount(which, minlength=len(cuts) + 1)
    at = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=at[1:])
    return (s[order], t[order], v[order]), at


def run_chunks(rows: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Consecutive ranges [lo, hi) of runs (given their row counts) holding up to `limit`
    rows each (a longer run is a range of its own), so per-row work stays bounded."""
    ends = np.cumsum(rows)
    chunks, lo = [], 0
    while lo < len(rows):
        base = ends[lo - 1] if lo else 0
        hi = max(int(np.searchsorted(ends, base + limit, side="right")), lo + 1)
        chunks.append((lo, hi))
        lo = hi
    return chunks


def series_pieces(series: np.ndarray, rows: int) -> list[tuple[int, int]]:
    """Row ranges [a, b) of whole series runs, about `rows` rows each (a longer run is a
    range of its own), covering rows grouped by series."""
    first = np.flatnonzero(run_starts(series))
    ends = np.append(first[1:], len(series))
    return [(int(first[lo]), int(ends[hi - 1])) for lo, hi in run_chunks(ends - first, rows)]


def last_at_or_before(series: np.ndarray, ts: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Whether each row (sorted by series, then time) is its series' last at or before
    one of the sorted times `at`: all an instant selector evaluated at `at` reads.

    Exact when applied to each part before a merge and once more after it: a row the
    merged data keeps has a time of `at` before the next row of its series there,
    and so before the next row in its own part, which keeps it too."""
    if not len(ts) or not len(at):
        return np.zeros(len(ts), dtype=bool)
    first_at = np.searchsorted(at, ts, side="left")  # the first time at or after the row
    keep = first_at < len(at)
    ends_run = np.append(run_starts(series)[1:], True)
    # The next row of the series comes after that time: nothing replaces this row there.
    after = np.zeros(len(ts), dtype=bool)
    np.greater(ts[1:], at[np.minimum(first_at[:-1], len(at) - 1)], out=after[:-1])
    return keep & (ends_run | after)


def spans(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The row indices of the ranges [lo[i], hi[i]), one after the other."""
    lengths = hi - lo
    total = int(lengths.sum())
    if total == 0:
        return EMPTY_I64
    nz = lengths > 0
    lo, lengths = lo[nz], lengths[nz]
    starts = np.repeat(lo - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return starts + np.arange(total)


def ranges_for(sorted_series: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Row indices of `sorted_series` whose value is in `ids` (ids sorted, unique)."""
    lo = np.searchsorted(sorted_series, ids, side="left")
    hi = np.searchsorted(sorted_series, ids, side="right")
    return spans(lo, hi)
