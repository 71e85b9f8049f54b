"""`bastion data protect --ner`: a bad option is a usage error (exit 2, no traceback); a good one runs the
opt-in model (a fake pipeline here) on the free-text columns."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

import bastion.data.pii._ner as ner
from bastion.cli.main import app, main

runner = CliRunner()
_NAME = "Qzxv Wyplt"


class _Ent:
    def __init__(self, s: int, e: int) -> None:
        self.start_char, self.end_char, self.label_ = s, e, "PERSON"


class _Nlp:
    def pipe(self, texts: list[str], batch_size: int) -> Any:
        for t in texts:
            i = t.find(_NAME)
            yield type("Doc", (), {"ents": [_Ent(i, i + len(_NAME))] if i >= 0 else []})()


@pytest.fixture
def notes(project: Any, project_dir: Any) -> Any:
    df = pd.DataFrame(
        {
            "note": [
                f"Visit {i}: discussed the plan with {_NAME} at length; agreed to review."
                if i % 5 == 0
                else f"Visit {i}: blood pressure fine, follow up in {i % 7 + 2} weeks."
                for i in range(40)
            ]
        }
    )
    path = project_dir / "notes.parquet"
    df.to_parquet(path)
    return path


@pytest.mark.parametrize("bad", ["gliner", "spacy:../x", "spacy:a b"])
def test_bad_ner_option_is_a_usage_error(notes: Any, bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        main(["data", "protect", str(notes), "-o", "c.parquet", "--no-register", "--ner", bad])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    err = capsys.readouterr().err
    assert code == 2 and "NER option" in err and "Traceback" not in err


def test_ner_option_protects_names_only_the_model_finds(
    notes: Any, project_dir: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_KEY_PASSPHRASE", "pw")
    assert runner.invoke(app, ["keys", "init"]).exit_code == 0
    monkeypatch.setattr(ner, "_load", lambda model: _Nlp())
    r = runner.invoke(
        app, ["data", "protect", str(notes), "-o", "c.parquet", "--no-register", "--json", "--ner", "spacy:m"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["residual_identifiers"] == 0
    out = pd.read_parquet(project_dir / "c.parquet")
    assert not out["note"].str.contains("Qzxv|Wyplt").any()
