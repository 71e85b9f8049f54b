"""User-defined entity types: CustomPattern registration, per-call recognizers and entry-point plugins."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import numpy as np
import pandas as pd
import pytest

import bastion.data.pii._registry as registry
from bastion.data.pii import CustomPattern, Recognizer, detect_spans, register_pattern, scan_table
from bastion.errors import ConfigError


def test_custom_pattern_in_columns_and_text():
    register_pattern(CustomPattern("EMPLOYEE_ID", r"EMP-\d{6}", name_hints=("employee",), context_words=("staff",)))
    df = pd.DataFrame(
        {"col_1": [f"EMP-{i:06d}" for i in range(50)], "notes": ["staff member EMP-000123 left early"] * 50}
    )
    report = scan_table(df)
    assert report.finding("col_1").entity == "EMPLOYEE_ID"
    assert report.finding("notes").spans_found == {"EMPLOYEE_ID": 50}
    spans = detect_spans("staff member EMP-000123 left")
    assert spans[0].entity == "EMPLOYEE_ID" and spans[0].score > 0.8


def test_custom_pattern_validator():
    register_pattern(CustomPattern("EVEN_CODE", r"EV\d{4}", validator=lambda v: int(v[2:]) % 2 == 0))
    assert [s.entity for s in detect_spans("codes EV0002 and EV0003")] == ["EVEN_CODE"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"entity": "lower", "pattern": "x"}, "upper case"), ({"entity": "BAD_RE", "pattern": "("}, "not a valid regex"),
     ({"entity": "SCORE", "pattern": "x", "score": 1.5}, "must be in")],
)
def test_custom_pattern_rejects_bad_specs(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        CustomPattern(**kwargs)


class _Badge(Recognizer):
    entity = "BADGE"
    text_pattern = r"BDG\d{3}"

    def match_cells(self, values: pd.Series) -> np.ndarray:
        return values.str.fullmatch(r"BDG\d{3}").to_numpy(dtype=bool, copy=True)


def test_per_call_recognizer():
    assert [s.entity for s in detect_spans("badge BDG123", recognizers=[_Badge()])] == ["BADGE"]
    assert detect_spans("badge BDG123") == []


def test_entry_point_plugins(monkeypatch):
    ep = EntryPoint(name="badge", value="test_pii_custom:_Badge", group="bastion.recognizers")
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep])
    monkeypatch.setattr(registry, "_plugins", None)
    registry.invalidate()
    try:
        assert "BADGE" in {r.entity for r in registry.active_recognizers()}
        broken = EntryPoint(name="broken", value="no_such_module_xyz:Thing", group="bastion.recognizers")
        monkeypatch.setattr(registry, "entry_points", lambda group: [broken])
        monkeypatch.setattr(registry, "_plugins", None)
        registry.invalidate()
        with pytest.raises(ConfigError, match="failed to import"):
            registry.active_recognizers()
    finally:
        monkeypatch.setattr(registry, "_plugins", None)
        monkeypatch.undo()
        registry.invalidate()
