"""Policy files: valid ones load; bad ones fail with the line and field named; the digest tracks meaning."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.gates.policy import load_policy

GOOD = """\
version: 2
name: credit
sensitive_attributes: [sex, race]
intersections:
  - [sex, race]
checks:
  performance:
    thresholds: {accuracy: 0.8, roc_auc: 0.85}
  fairness:
    thresholds:
      demographic_parity_difference: 0.1
      equalized_odds_ratio: 0.8
  robustness: {sample_size: 10}
aliases:
  production:
    requires: [gate, signature, scan]
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bastion-policy.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_good_policy_loads(tmp_path: Path) -> None:
    pol = load_policy(write(tmp_path, GOOD))
    assert pol.version == 2 and pol.groupings() == [("sex",), ("race",), ("sex", "race")]
    assert pol.aliases["production"].requires == ["gate", "signature", "scan"]
    assert pol.spec("robustness").sample_size == 10  # type: ignore[attr-defined]
    assert pol.digest.startswith("sha256:") and len(pol.digest) == 71


def test_digest_ignores_comments_but_not_thresholds(tmp_path: Path) -> None:
    base = load_policy(write(tmp_path, GOOD)).digest
    assert load_policy(write(tmp_path, "# a comment\n" + GOOD)).digest == base
    assert load_policy(write(tmp_path, GOOD.replace("0.1", "0.2"))).digest != base
    # who may reveal data is not part of what a gate ran with: recorded gate runs stay valid
    reveal = "\nreveal:\n  auditor:\n    actors: [alice]\n    columns: [ssn]\n"
    assert load_policy(write(tmp_path, GOOD + reveal)).digest == base


@pytest.mark.parametrize(
    ("old", "new", "line", "needle"),
    [
        ("  robustness: {sample_size: 10}", "  robustnes: {sample_size: 10}", 13, "unknown check 'robustnes'"),
        ("demographic_parity_difference: 0.1", "demographic_parity_difference: 1.5", 11,
         "checks.fairness.thresholds.demographic_parity_difference"),
        ("demographic_parity_difference: 0.1", "demographic_parity_difference: high", 11, "valid number"),
        ("{sample_size: 10}", "{sample_size: ten}", 13, "checks.robustness.sample_size"),
        ("{sample_size: 10}", "{sample_sise: 10}", 13, "unknown field"),
        ("version: 2", "version: 0", 1, "'version'"),
        ("requires: [gate, signature, scan]", "requires: [gate, vibes]", 16, "aliases.production.requires.1"),
        ("  - [sex, race]", "  - [sex, age]", 5, "intersection attribute 'age'"),
        ("equalized_odds_ratio: 0.8", "equalised_odds_ratio: 0.8", 12, "unknown field"),
        # NaN passes no bound and fails every comparison: it would switch a threshold off silently
        ("demographic_parity_difference: 0.1", "demographic_parity_difference: .nan", 11,
         "checks.fairness.thresholds.demographic_parity_difference"),
        ("{sample_size: 10}", "{sample_size: 10, epsilon: .inf}", 13, "checks.robustness.epsilon"),
        ("{accuracy: 0.8, roc_auc: 0.85}", "{accuracy: 0.8, log_loss: .inf}", 8,
         "checks.performance.thresholds.log_loss"),
    ],
)
def test_bad_policies_name_line_and_field(tmp_path: Path, old: str, new: str, line: int, needle: str) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError) as info:
        load_policy(write(tmp_path, GOOD.replace(old, new)))
    msg = str(info.value)
    assert f"line {line}" in msg, msg
    assert needle in msg, msg


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("version: [1\n", "not valid YAML"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("name: x\n", "'version'"),
        ("version: 1\nchecks:\n  fairness: {}\n", "needs 'sensitive_attributes'"),
    ],
)
def test_structurally_bad_policies(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_policy(write(tmp_path, text))


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_policy(tmp_path / "nope.yaml")


def test_hostile_yaml_structures_are_refused_quickly(tmp_path: Path) -> None:
    import time

    # "billion laughs": ten levels of ten aliases stand for 10^10 values in a few hundred bytes
    levels = ['&l0 ["a", "a", "a", "a", "a", "a", "a", "a", "a", "a"]']
    levels += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 10)]
    t = time.monotonic()
    with pytest.raises(ConfigError, match="expands to more than"):
        load_policy(write(tmp_path, "version: 1\nintersections: [" + ", ".join(levels) + "]\n"))
    assert time.monotonic() - t < 5
    with pytest.raises(ConfigError, match="recursive"):
        load_policy(write(tmp_path, "version: 1\nintersections: &r [*r]\n"))
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_policy(write(tmp_path, "version: 1\nintersections: " + "[" * 5000 + "]" * 5000 + "\n"))
