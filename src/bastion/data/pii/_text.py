"""Span-level detection in free text: every recognizer runs over big chunks of joined cells at once,
then matches are mapped back to cells and overlaps resolved (longest, then highest priority)."""

from __future__ import annotations

import gc
import re
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from itertools import pairwise

import numpy as np

from bastion.data.pii._registry import with_extra
from bastion.data.pii.interface import GATE_ALPHA, GATE_CAPS, GATE_DIGIT, Recognizer, Span

__all__ = ["MIN_SCORE", "detect_spans", "detect_spans_batch", "gc_paused"]

MIN_SCORE = 0.5
CHUNK_CHARS = 2_000_000
_SEP = "\n"
_TRAIL = ".,;:!?)]}'\""


def detect_spans(
    text: str,
    *,
    entities: Sequence[str] | None = None,
    recognizers: Sequence[Recognizer] | None = None,
    ner: str | None = None,
) -> list[Span]:
    """Entities in one text, as spans with offsets into ``text`` (sorted by start).

    Parameters
    ----------
    text : the text to search.
    entities : restrict to these entity types (default: all active recognizers).
    recognizers : extra recognizers for this call only.
    ner : ``"spacy"`` (or ``"spacy:MODEL"``) adds PERSON spans from an installed spaCy model.
    """
    return detect_spans_batch([text], entities=entities, recognizers=recognizers, ner=ner)[0]


def detect_spans_batch(
    texts: Sequence[str | None],
    *,
    entities: Sequence[str] | None = None,
    recognizers: Sequence[Recognizer] | None = None,
    min_score: float = MIN_SCORE,
    ner: str | None = None,
) -> list[list[Span]]:
    """`detect_spans` over a column of texts at once (None/NaN/non-str cells give no spans)."""
    recs = [r for r in with_extra(recognizers, entities) if _finds_text(r)]
    out: list[list[Span]] = [[] for _ in range(len(texts))]
    n = len(texts)
    i = 0
    while i < n:
        parts: list[str] = []
        rows: list[int] = []
        size = 0
        while i < n and (size < CHUNK_CHARS or not parts):
            t = texts[i]
            if isinstance(t, str) and t:
                parts.append(t)
                rows.append(i)
                size += len(t) + 1
            i += 1
        if not parts:
            continue
        with gc_paused():
            _scan_chunk(parts, rows, recs, min_score, out)
        if ner is not None:
            from bastion.data.pii._ner import ner_spans

            _merge(out, rows, ner_spans(parts, ner), min_score)
    return out


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while one chunk is scanned (or one batch linked).

    A chunk creates and frees some 10^5 match objects, tuples and spans, none of them in a reference cycle (all
    are freed by reference counting), yet each 700 allocations start a collection and the larger ones walk
    every object of the process: about a sixth of the scan's CPU time. Memory stays bounded by the chunk.
    Collection resumes afterwards unless the caller had switched it off itself.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _finds_text(rec: Recognizer) -> bool:
    return rec.text_pattern is not None or type(rec).find_in_text is not Recognizer.find_in_text


def _scan_chunk(
    parts: list[str], rows: list[int], recs: Sequence[Recognizer], min_score: float, out: list[list[Span]]
) -> None:
    chunk = _SEP.join(parts)
    lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    starts = np.zeros(len(parts), dtype=np.int64)
    np.cumsum(lengths[:-1] + 1, out=starts[1:])
    cands: list[tuple[int, int, float, int]] = []  # (start, end, score, recognizer index) in the chunk
    shared = _shared_candidates(chunk, recs)
    cell_starts: list[int] | None = None
    for k, rec in enumerate(recs):
        if k not in shared and rec.text_requires is not None and _default_search(rec):
            if cell_starts is None:
                cell_starts = starts.tolist()
            shared[k] = _required_candidates(chunk, cell_starts, rec)
    # candidates whose costly last check (`verify_span`) waits until the others are known
    deferred: list[tuple[int, int, float, int, int, int]] = []
    for k, rec in enumerate(recs):
        url = rec.entity == "URL"
        defer = _deferrable(rec)
        if defer:
            spans = shared[k] if k in shared else [m.span() for m in rec._compiled_text().finditer(chunk)]
            found = rec.scored(chunk, spans, verify=False)
        else:
            found = rec.find_in_text(chunk) if k not in shared else rec.scored(chunk, shared[k])
        if not url and not defer:
            cands.extend([(s, e, score, k) for s, e, score in found if score >= min_score])
            continue
        for s, e, score in found:
            if score < min_score:
                continue
            s0, e0 = s, e
            if url:
                while e > s and chunk[e - 1] in _TRAIL:
                    e -= 1
            if defer:
                deferred.append((s, e, score, k, s0, e0))
            else:
                cands.append((s, e, score, k))
    if deferred:
        # a non-empty span that a recognizer of higher priority also found is never kept (the overlap rule sees
        # that one first, with the same length): no need to verify it
        top: dict[tuple[int, int], int] = {}
        for s, e, _, k in cands:
            if e > s and top.get((s, e), -(2**31)) < recs[k].priority:
                top[(s, e)] = recs[k].priority
        for s, e, score, k, s0, e0 in deferred:
            if e > s and top.get((s, e), -(2**31)) > recs[k].priority:
                continue
            if recs[k].verify_span(chunk[s0:e0]):
                cands.append((s, e, score, k))
    if not cands:
        return
    c_start, c_end, c_score, c_rec = zip(*cands, strict=True)
    s_arr = np.asarray(c_start, dtype=np.int64)
    e_arr = np.asarray(c_end, dtype=np.int64)
    row_idx = np.searchsorted(starts, s_arr, side="right") - 1
    local_s = s_arr - starts[row_idx]
    local_e = e_arr - starts[row_idx]
    keep = np.flatnonzero(local_e <= lengths[row_idx])  # a match across two cells is no match
    # candidates grouped by row (stable: in the order found), each as a sortable tuple: longest, then highest
    # priority, then highest score, then leftmost; the recognizer's place in the list breaks the remaining ties,
    # as a stable sort in that order would
    keep = keep[np.argsort(row_idx[keep], kind="stable")]
    k_rows = row_idx[keep]
    bounds = [0, *(np.flatnonzero(np.diff(k_rows)) + 1).tolist(), len(keep)]
    prio = [-r.priority for r in recs]
    ents = [str(r.entity) for r in recs]
    keyed = [
        (ls - le, prio[k], -c_score[j], ls, le, k)
        for j, ls, le, k in zip(
            keep.tolist(), local_s[keep].tolist(), local_e[keep].tolist(), [c_rec[j] for j in keep.tolist()],
            strict=True,
        )
    ]
    k_rows_l = k_rows.tolist()
    for a, b in pairwise(bounds):
        out[rows[k_rows_l[a]]] = _resolve(keyed[a:b], ents)


def _default_search(rec: Recognizer) -> bool:
    """True when the recognizer's text candidates are exactly the matches of its ``text_pattern``."""
    return rec.text_pattern is not None and type(rec).find_in_text is Recognizer.find_in_text


def _required_candidates(chunk: str, cell_starts: list[int], rec: Recognizer) -> list[tuple[int, int]]:
    """``finditer`` of the recognizer's pattern, run only over the cells where its ``text_requires`` finds
    something (runs of consecutive such cells searched as one range, each with the line break after it).

    The same spans as over the whole chunk: no match crosses a line break, so none starts in a cell without a
    required part, and a search from a cell's start sees the text before it (lookbehinds) as a whole-chunk
    search does; at a range's end the lookarounds decide on the line break, as they do in the chunk.
    """
    required = rec._compiled_requires()
    assert required is not None
    ranges: list[list[int]] = []  # [first cell, last cell]
    last = -1
    n = len(cell_starts)
    for m in required.finditer(chunk):
        pos = m.start()
        if last >= 0 and pos < (cell_starts[last + 1] if last + 1 < n else len(chunk) + 1):
            continue  # still in the last cell found
        cell = bisect_right(cell_starts, pos) - 1
        if ranges and cell == last + 1:
            ranges[-1][1] = cell
        else:
            ranges.append([cell, cell])
        last = cell
    pattern = rec._compiled_text()
    out: list[tuple[int, int]] = []
    for a, b in ranges:
        end = cell_starts[b + 1] if b + 1 < n else len(chunk)  # the line break after the last cell included
        out.extend([m.span() for m in pattern.finditer(chunk, cell_starts[a], end)])
    return out


def _deferrable(rec: Recognizer) -> bool:
    cls = type(rec)
    return (
        rec.text_pattern is not None
        and cls.verify_span is not Recognizer.verify_span
        and cls.find_in_text is Recognizer.find_in_text
        and cls.scored is Recognizer.scored
    )


_FUSABLE_FLAGS = re.IGNORECASE | re.MULTILINE | re.DOTALL
_INLINE = (("i", re.IGNORECASE), ("m", re.MULTILINE), ("s", re.DOTALL))


def _fusable(rec: Recognizer) -> bool:
    if rec.text_gate is None or rec.text_pattern is None or type(rec).find_in_text is not Recognizer.find_in_text:
        return False
    if rec.text_flags & ~_FUSABLE_FLAGS:
        return False
    # numbered groups would be renumbered (and back-references broken) inside a combined pattern
    return rec._compiled_text().groups == 0


@lru_cache(maxsize=32)
def _fused(recs: tuple[Recognizer, ...]) -> tuple[tuple[re.Pattern[str], tuple[int, ...]], ...]:
    """One combined pattern per gate shared by two or more recognizers, and the recognizers it stands for.

    At each position where the gate holds and at least one pattern matches, a lookahead per recognizer
    captures that recognizer's match from this position, if any (the same match its own pattern gives there).
    """
    by_gate: dict[str, list[int]] = {}
    for k, rec in enumerate(recs):
        if _fusable(rec):
            by_gate.setdefault(str(rec.text_gate), []).append(k)
    out = []
    for gate, members in by_gate.items():
        if len(members) < 2:
            continue
        wrapped = []
        for k in members:
            flags = recs[k].text_flags
            inline = "".join(f for f, bit in _INLINE if flags & bit)
            wrapped.append(f"(?{inline}:{recs[k].text_pattern})" if inline else f"(?:{recs[k].text_pattern})")
        any_ = "|".join(wrapped)
        each = "".join(f"(?:(?=(?P<g{j}>{w}))|)" for j, w in enumerate(wrapped))
        first = _GATE_FIRST.get(gate)
        if first is not None:
            # the same test written to start with the gate's first character, consumed, and everything else in a
            # lookbehind of that one character: the engine then skips to those characters in one C loop instead
            # of trying the lookarounds at every position (the groups still start where the gate holds, and the
            # positions tried are the same, since each match is one character long)
            out.append((re.compile(f"{first}(?<={gate}(?={any_}){each}{first})"), tuple(members)))
        else:
            out.append((re.compile(f"{gate}(?={any_}){each}"), tuple(members)))
    return tuple(out)


# the character class every position where a built-in gate holds starts with
_GATE_FIRST = {GATE_DIGIT: r"\d", GATE_CAPS: "[A-Z]", GATE_ALPHA: "[A-Za-z]"}


def _shared_candidates(chunk: str, recs: Sequence[Recognizer]) -> dict[int, list[tuple[int, int]]]:
    """Candidate spans of the recognizers that share a gate, found in one pass per gate.

    Each recognizer keeps the leftmost candidates that do not overlap its previous one: exactly what
    ``finditer`` of its own pattern returns, since its matches can only start where the gate holds.
    """
    out: dict[int, list[tuple[int, int]]] = {}
    for pattern, members in _fused(tuple(recs)):
        lists: list[list[tuple[int, int]]] = [[] for _ in members]
        last = [0] * len(members)
        empty = [False] * len(members)
        n = len(members)
        for m in pattern.finditer(chunk):
            regs = m.regs
            for j in range(n):
                s, e = regs[j + 1]
                if s >= last[j]:  # an unmatched lookahead gives (-1, -1)
                    if e == s:
                        empty[j] = True  # a pattern that matches empty text runs on its own (finditer rules)
                    lists[j].append((s, e))
                    last[j] = e
        for j, k in enumerate(members):
            if not empty[j]:
                out[k] = lists[j]
    return out


def _resolve(cands: list[tuple[int, int, float, int, int, int]], ents: list[str]) -> list[Span]:
    """Non-overlapping spans: the longest wins, then the higher priority, then the higher score."""
    if len(cands) == 1:
        _, _, neg, s, e, k = cands[0]
        return [Span(ents[k], s, e, float(-neg))]
    cands.sort()
    kept: list[tuple[int, int, float, int, int, int]] = []
    if all(c[0] < 0 for c in cands):
        # no empty span: one byte per character marks what is taken (same answer as the pairwise test below)
        taken = bytearray(max(c[4] for c in cands))
        for c in cands:
            s, e = c[3], c[4]
            if taken.find(1, s, e) < 0:
                kept.append(c)
                taken[s:e] = b"\x01" * (e - s)
    else:
        for c in cands:
            s, e = c[3], c[4]
            if all(e <= k[3] or s >= k[4] for k in kept):
                kept.append(c)
    kept.sort(key=lambda c: c[3])
    return [Span(ents[k], s, e, float(-neg)) for _, _, neg, s, e, k in kept]


def _merge(out: list[list[Span]], rows: list[int], extra: list[list[Span]], min_score: float) -> None:
    for r, spans in zip(rows, extra, strict=True):
        if not spans:
            continue
        current = out[r]
        for sp in spans:
            if sp.score >= min_score and all(sp.end <= c.start or sp.start >= c.end for c in current):
                current.append(sp)
        current.sort(key=lambda s: s.start)
        out[r] = current
