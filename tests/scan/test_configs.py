"""Model config files (JSON): remote-code references and stored credentials, judged by field, never by text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.scan import Severity, scan_path


def _scan(tmp_path: Path, doc: object, name: str = "config.json") -> list[tuple[str, Severity, str]]:
    path = tmp_path / name
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return [(f.rule_id, f.severity, f.construct) for f in scan_path(path).findings]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"model_type": "bert", "auto_map": {"AutoModel": "modeling_x.XModel"}},
         [("config.remote-code", Severity.HIGH, "auto_map")]),
        ({"custom_pipelines": {"x": {"impl": "pipe.P"}}}, [("config.remote-code", Severity.HIGH, "custom_pipelines")]),
        ({"a": {"openai_api_key": "sk-abcdefghijklmnop"}},
         [("config.credential", Severity.MEDIUM, "a.openai_api_key")]),
        ({"hub": [{"Auth-Token": "hf_abcdefghijklmnopq"}]},
         [("config.credential", Severity.MEDIUM, "hub[0].Auth-Token")]),
        ({"password": "correct horse battery"}, [("config.credential", Severity.MEDIUM, "password")]),
        # not credentials: other names, short or non-string values, free text that merely looks like code
        ({"exfil_key": "SECRET_API_KEY_12345", "cache_key": "abcdefghijkl", "api_key": ""}, []),
        ({"api_key": None, "password": 12345678, "token_type_ids": "abcdefghijkl"}, []),
        ({"description": "import os; os.system('rm -rf /')", "url": "http://evil.example/x"}, []),
        ({"auto_map": {}}, []),
        ("[1, 2, 3]", []),
        ("{not json", []),
    ],
)
def test_config_fields(tmp_path: Path, doc: object, expected: list[tuple[str, Severity, str]]) -> None:
    assert _scan(tmp_path, doc) == expected


def test_credential_value_is_never_echoed(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"api_key": "sk-do-not-print-me-123"}))
    finding = scan_path(path).findings[0]
    assert "do-not-print" not in finding.message and "do-not-print" not in finding.construct


def test_tokenizer_config_with_a_template_and_auto_map_reports_both(tmp_path: Path) -> None:
    doc = {"chat_template": "{{ x.__class__ }}", "auto_map": {"AutoTokenizer": ["tok.T", None]}}
    rules = {r for r, _, _ in _scan(tmp_path, doc, "tokenizer_config.json")}
    assert rules == {"format.template-injection", "config.remote-code"}
