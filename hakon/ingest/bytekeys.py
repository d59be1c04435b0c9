"""Byte strings inside one buffer -> ids, looked up for a whole request at once.

Why: a remote_write series is keyed by its label bytes, and a dict keyed by
`bytes` costs a slice (a new object), a hash of ~170 bytes and a lookup per
series: most of what decoding a request cost. Here the keys of a request stay
where they are in the body. Each key is read as little-endian words (rows of a
sliding window, masked to the key's length), hashed with a keyed multilinear
hash in one matrix product, found by hash in an open-addressing table probed
for all keys at once (a dict of ints was no faster than the bytes dict: every
lookup in a table of 100,000 keys is a chain of cache misses that numpy's
gathers overlap), and then compared word for word with the copy the table
keeps: a lookup is exact, the hash only finds the candidate. Keys longer than
`MAX_KEY` bytes are not kept here.
"""

from __future__ import annotations

import os

import numpy as np

MAX_KEY = 256  # bytes; longer keys are the caller's to keep elsewhere
_WORDS = MAX_KEY // 8
_PAD = bytes(MAX_KEY)

# _MASKS[n]: the words whose bytes are all set for the first n bytes and clear after.
_MASKS = np.zeros((MAX_KEY + 1, _WORDS), np.uint64)
for _n in range(MAX_KEY + 1):
    _MASKS[_n].view(np.uint8)[:_n] = 0xFF
# The same cut to each width in words, contiguous (a gather of whole rows is faster).
_MASKS_OF_WIDTH = [np.ascontiguousarray(_MASKS[:, :w]) for w in range(_WORDS + 1)]


def windows(data: np.ndarray, width: int) -> np.ndarray:
    """Row i: the `width` bytes of `data` from byte i (a view, as numpy's
    `sliding_window_view`, without its checks: a tenth of the cost)."""
    return np.ndarray((len(data) - width + 1, width), np.uint8, data, 0, (1, 1))


def padded(buffer: bytes) -> bytes:
    """The buffer with room after it for a whole key window (what `lookup` takes)."""
    return buffer + _PAD


class ByteKeyTable:
    """Exact map from byte strings of at most `MAX_KEY` bytes to int64 ids.

    Not thread-safe: callers hold their own lock around `lookup` and `add`.
    """

    def __init__(self) -> None:
        seed = np.frombuffer(os.urandom(8 * (_WORDS + 1)), np.uint64)
        self._key = seed[:_WORDS] | np.uint64(1)  # odd multipliers, secret per process
        self._length_key = seed[_WORDS] | np.uint64(1)
        self.clear()

    def clear(self) -> None:
        # Open addressing, linear probing: hash (0 = empty) and slot at each position.
        self._hashes = np.zeros(1 << 12, np.uint64)
        self._slots = np.zeros(1 << 12, np.int64)
        self._count = 0
        # Each kept key as a row of words, zero past its end, as wide as the longest
        # key: a lookup gathers whole rows to compare, with no masking.
        self._words_kept = np.zeros((1024, 1), np.uint64)
        self._lengths = np.zeros(1024, np.int64)
        self._ids = np.zeros(1024, np.int64)

    def __len__(self) -> int:
        return self._count

    def hashes(self, buffer: bytes, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The hash of each key `buffer[start : start + length]` (`buffer` from `padded`)."""
        return self._hash(self._words(buffer, starts, lengths), lengths)

    def lookup(
        self, buffer: bytes, starts: np.ndarray, lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, found mask, hashes) of the keys `buffer[start : start + length]`.

        `buffer` comes from `padded`; every length is in 1..MAX_KEY.
        """
        n = len(starts)
        ids = np.zeros(n, np.int64)
        words = self._words(buffer, starts, lengths)
        hashes = self._hash(words, lengths)
        if not n or not self._count:
            return ids, np.zeros(n, bool), hashes
        slots = self._find(hashes)
        found = slots >= 0
        rows: slice | np.ndarray
        if found.all():  # as usual: every key seen before
            rows, asked = slice(None), words
        elif found.any():
            rows = np.flatnonzero(found)
            asked = words[rows]
        else:
            return ids, found, hashes
        held = slots[rows]
        # Equal lengths and equal words up to the narrower width: past it, the wider
        # side's words are zero for every key of that length.
        width = min(asked.shape[1], self._words_kept.shape[1])
        same = (self._words_kept[held, :width] == asked[:, :width]).all(axis=1)
        same &= self._lengths[held] == lengths[rows]
        if not same.all():
            found[np.flatnonzero(found)[~same]] = False
        ids[found] = self._ids[slots[found]]
        return ids, found, hashes

    def add(self, key: bytes, hash_: int, sid: int) -> bool:
        """Keep `key` -> `sid` under its hash; False when another key holds the hash."""
        if 2 * (self._count + 1) > len(self._hashes):
            self._rehash(2 * len(self._hashes))
        mask = len(self._hashes) - 1
        at = hash_ & mask
        while (held := int(self._hashes[at])) != 0:
            if held == hash_:
                return False
            at = (at + 1) & mask
        slot = self._count
        rows, width = self._words_kept.shape
        need = -(-len(key) // 8)
        if slot == rows or need > width:
            grown = np.zeros((2 * rows if slot == rows else rows, max(width, need)), np.uint64)
            grown[:slot, :width] = self._words_kept[:slot]
            self._words_kept = grown
        if slot == len(self._ids):
            self._lengths = np.resize(self._lengths, 2 * slot)
            self._ids = np.resize(self._ids, 2 * slot)
        self._words_kept[slot].view(np.uint8)[: len(key)] = np.frombuffer(key, np.uint8)
        self._lengths[slot], self._ids[slot] = len(key), sid
        self._hashes[at], self._slots[at] = hash_, slot
        self._count += 1
        return True

    # -- internals ------------------------------------------------------------------

    # Probing rounds run for all keys at once until this few are left; those finish one
    # at a time (a round costs the same few microseconds for 3 keys as for 300, and the
    # longest probe sequence among 2,000 keys took nine rounds).
    SCALAR_AT = 8

    def _find(self, hashes: np.ndarray) -> np.ndarray:
        """The slot holding each hash, -1 where none does: all keys probe together."""
        size = len(self._hashes)
        slots = np.full(len(hashes), -1, np.int64)
        at = (hashes & np.uint64(size - 1)).astype(np.int64)
        todo = np.arange(len(hashes))
        while len(todo) > self.SCALAR_AT:
            held = self._hashes[at]
            hit = held == hashes[todo]
            slots[todo[hit]] = self._slots[at[hit]]
            more = ~hit & (held != 0)
            todo, at = todo[more], (at[more] + 1) & (size - 1)
        table, mask = self._hashes, size - 1
        for k, a in zip(todo.tolist(), at.tolist(), strict=True):
            wanted = hashes[k]
            while (held := table[a]) != 0:
                if held == wanted:
                    slots[k] = self._slots[a]
                    break
                a = (a + 1) & mask
        return slots

    def _rehash(self, size: int) -> None:
        """Move every hash into a table of `size` positions (in rounds: per position,
        the first contender takes it and the others probe on)."""
        used = np.flatnonzero(self._hashes)
        hashes, slots = self._hashes[used], self._slots[used]
        self._hashes = np.zeros(size, np.uint64)
        self._slots = np.zeros(size, np.int64)
        at = (hashes & np.uint64(size - 1)).astype(np.int64)
        todo = np.arange(len(hashes))
        while len(todo):
            free = self._hashes[at] == 0
            _, first = np.unique(at[free], return_index=True)
            won = np.flatnonzero(free)[first]
            self._hashes[at[won]] = hashes[todo[won]]
            self._slots[at[won]] = slots[todo[won]]
            rest = np.ones(len(todo), bool)
            rest[won] = False
            todo, at = todo[rest], (at[rest] + 1) & (size - 1)

    @staticmethod
    def _window(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Rows of words, from each start, masked to each length."""
        width = -(-int(lengths.max(initial=1)) // 8)
        words = windows(data, 8 * width)[starts].view(np.uint64)
        words &= _MASKS_OF_WIDTH[width][lengths]
        return words

    def _words(self, buffer: bytes, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return self._window(np.frombuffer(buffer, np.uint8), starts, lengths)

    def _hash(self, words: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        h = words @ self._key[: words.shape[1]]
        h += lengths.astype(np.uint64) * self._length_key
        h ^= h >> np.uint64(29)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(32)
        h[h == 0] = 1  # 0 marks an empty position
        return h
