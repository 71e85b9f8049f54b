"""The monitoring section of bastion-policy.yaml: strict parsing, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.monitor.config import load_monitoring_config, parse_monitoring_config


def test_defaults_and_full_file(tmp_path: Path) -> None:
    assert load_monitoring_config(None).drift.thresholds["wasserstein"] == 0.1
    assert load_monitoring_config(tmp_path / "missing.yaml").drift.verdict == "auto"
    f = tmp_path / "bastion-policy.yaml"
    f.write_text(
        """
monitoring:
  drift:
    multiple_testing: bonferroni
    thresholds: {psi: 0.25}
    columns:
      age: {test: psi, threshold: 0.3}
      zip: {ignore: true}
  performance: {floors: {accuracy: 0.8}, sensitive: [sex]}
  alerts:
    webhook: {url: "https://hooks.example/x", retries: 2}
    rollback: {enabled: true, alias: production}
""",
        encoding="utf-8",
    )
    cfg = load_monitoring_config(f)
    assert cfg.drift.multiple_testing == "bonferroni"
    assert cfg.drift.thresholds == {"wasserstein": 0.1, "js": 0.1, "psi": 0.25, "ks": 0.05, "chi2": 0.05}
    assert cfg.drift.columns["age"].test == "psi" and cfg.drift.columns["zip"].ignore
    assert cfg.alerts.webhook is not None and cfg.alerts.webhook.retries == 2
    assert cfg.alerts.rollback.enabled


@pytest.mark.parametrize(
    ("section", "match"),
    [
        ({"drift": {"verdict": "vibes"}}, "drift.verdict"),
        ({"drift": {"alpha": 1.5}}, "drift.alpha"),
        ({"drift": {"columns": {"a": {"test": "magic"}}}}, "unknown drift test"),
        ({"drift": {"thresholds": {"magic": 1}}}, "unknown tests"),
        ({"drfit": {}}, "drfit"),
        ({"alerts": {"webhook": {"url": "ftp://x"}}}, "http"),
        ({"alerts": {"rules": [{"name": "a", "when": "data_drift"}, {"name": "a", "when": "anomaly"}]}}, "unique"),
        ({"anomaly": {"contamination": 0.9}}, "anomaly.contamination"),
    ],
)
def test_bad_sections(section: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=match):
        parse_monitoring_config(section)


@pytest.mark.parametrize("text", ["monitoring: [1, 2]", "- a\n- b", "monitoring: {drift: {alpha: [}"])
def test_bad_files(tmp_path: Path, text: str) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError):
        load_monitoring_config(f)
