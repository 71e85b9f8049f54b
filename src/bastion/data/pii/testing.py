"""Conformance checks for recognizer authors: run `check_recognizer` on your plugin in your own tests.

It checks the contract the scanner relies on (types, shapes, offsets, masking), not accuracy.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from bastion.data.pii.interface import Recognizer

__all__ = ["check_recognizer"]

_PROBE_CELLS = ("", "a", "John Smith", "123-45-6789", "ünïcødé ✓", "x" * 5000, "4111 1111 1111 1111", "  spaced  ")
_PROBE_TEXT = "Patient John Smith, SSN 123-45-6789, card 4111 1111 1111 1111.\nünïcødé ✓ " + "filler " * 50


def check_recognizer(rec: Recognizer, *, examples: tuple[str, ...] = ()) -> None:
    """Raise AssertionError when ``rec`` breaks the `Recognizer` contract.

    ``examples`` are values your recognizer must find as whole cells (and, if it searches text, in text).
    """
    assert isinstance(rec.entity, str) and re.fullmatch(r"[A-Z][A-Z0-9_]+", rec.entity), "entity: UPPER_CASE str"
    cells = pd.Series([*_PROBE_CELLS, *examples], dtype=object)
    for fn in (rec.match_cells, rec.match_named):
        mask = fn(cells)
        assert isinstance(mask, np.ndarray) and mask.dtype == bool, f"{fn.__name__} must return a bool ndarray"
        assert mask.shape == (len(cells),), f"{fn.__name__} must return one flag per cell"
        mask[:] = mask  # must be writable: the scanner combines masks in place
    if examples:
        found = rec.match_cells(pd.Series(list(examples), dtype=object))
        missed = [e for e, f in zip(examples, found, strict=True) if not f]
        assert found.all(), f"examples not matched as cells: {missed}"
    factor, why = rec.refine(cells, rec.match_cells(cells), named=False)
    assert 0.0 <= factor <= 1.0 and all(isinstance(w, str) for w in why), "refine: factor in [0, 1], str evidence"
    for text in (_PROBE_TEXT, *(f"see {e} here" for e in examples)):
        for start, end, score in rec.find_in_text(text):
            assert 0 <= start < end <= len(text), "find_in_text offsets must lie inside the text"
            assert 0.0 < score <= 1.0, "scores lie in (0, 1]"
    for value in (*examples, "John Smith", "123-45-6789"):
        masked = rec.mask(value)
        assert isinstance(masked, str), "mask returns str"
        assert len(value) < 4 or value not in masked, "mask must not return the value"
