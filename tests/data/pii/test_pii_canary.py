"""Canary: PII values from the input never appear in reports, JSON or logs (masked examples only)."""

from __future__ import annotations

import json
import logging

from typer.testing import CliRunner

from bastion.cli.main import app
from bastion.data.pii import scan_table


def _canaries(labelled):
    vals = set()
    for col, label in labelled.column_labels.items():
        if label and label != "TEXT":
            vals.update(str(v) for v in labelled.frame[col].head(300))
    return vals


def test_report_and_logs_hold_no_pii(tmp_path, corpus_mod, caplog):
    labelled = corpus_mod.make_table(300, seed=5, neutral=False)
    caplog.set_level(logging.DEBUG, logger="bastion")
    report = scan_table(labelled.frame)
    doc = json.dumps(report.to_dict())
    leaked = [v for v in _canaries(labelled) if len(v) >= 5 and v in doc]
    assert leaked == []
    # notes hold names; their tokens must not show up either
    for col in ("full_name", "first_name", "last_name"):
        for name in labelled.frame[col].head(100):
            for tok in str(name).split():
                if len(tok) >= 4:
                    assert tok not in doc, tok
    assert all(v not in caplog.text for v in _canaries(labelled) if len(v) >= 5)


def test_cli_output_holds_no_pii(tmp_path, corpus_mod):
    labelled = corpus_mod.make_table(200, seed=6, neutral=True)
    path = tmp_path / "t.parquet"
    labelled.frame.to_parquet(path, index=False)
    out = tmp_path / "report.json"
    res = CliRunner().invoke(app, ["data", "scan", str(path), "--json", "-o", str(out)])
    assert res.exit_code == 0
    text = res.output + out.read_text()
    assert [v for v in _canaries(labelled) if len(v) >= 5 and v in text] == []
