"""Attack rules fire on synthetic extraction, probing and failure bursts, and not on ordinary traffic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from bastion.monitor.attacks import Severity, detect_attacks
from bastion.monitor.config import AttacksConfig

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _traffic(rng: np.random.Generator, key: str, n: int, *, client: str = "10.0.0.1", start: int = 0) -> pd.DataFrame:
    x1 = rng.normal(40, 10, n).round()  # like ages: ordinary clients repeat typical inputs
    x2 = rng.choice([20.0, 40.0, 60.0], n)
    p = 1 / (1 + np.exp(-(x1 - 40) / 5))
    return pd.DataFrame(
        {
            "request_id": [f"{key}-{start + i}" for i in range(n)],
            "ts": [T0 + timedelta(seconds=start + i * 7) for i in range(n)],
            "key_id": key,
            "client": client,
            "outcome": "ok",
            "in.x1": x1,
            "in.x2": x2,
            "out.label": (p > 0.5).astype(int),
            "out.proba": p,
        }
    )


def _ordinary(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.concat([_traffic(rng, f"key{i}", 150, client=f"10.0.0.{i}") for i in range(8)], ignore_index=True)


def test_ordinary_traffic_raises_nothing() -> None:
    for seed in range(5):
        assert detect_attacks(_ordinary(seed)) == []


def test_extraction_by_volume_and_diversity_names_the_key() -> None:
    rng = np.random.default_rng(1)
    n = 3000
    thief = pd.DataFrame(
        {
            "request_id": [f"t{i}" for i in range(n)],
            "ts": [T0 + timedelta(seconds=i) for i in range(n)],
            "key_id": "thief",
            "client": "6.6.6.6",
            "outcome": "ok",
            "in.x1": rng.uniform(0, 100, n),  # sweeps the input space
            "in.x2": rng.uniform(0, 100, n),
            "out.label": 0,
            "out.proba": 0.3,
        }
    )
    found = detect_attacks(pd.concat([_ordinary(), thief], ignore_index=True))
    assert [f.rule for f in found] == ["extraction"]
    assert found[0].key_id == "thief" and found[0].severity == Severity.CRITICAL
    assert found[0].evidence["queries"] == n and "thief" in found[0].message


def test_extraction_uses_the_keys_own_history() -> None:
    rng = np.random.default_rng(2)
    window = pd.concat([_ordinary(), _traffic(rng, "batch", 2000)], ignore_index=True)
    history = _traffic(rng, "batch", 2000)  # the batch client always sends this much
    assert detect_attacks(window, baseline=history, baseline_scale=1.0) == []
    assert [f.key_id for f in detect_attacks(window)] == ["batch"]  # without history it stands out


def test_evasion_probing_walks_to_the_boundary() -> None:
    # A walk in small steps toward the boundary at x1=40, then a tight search back and forth across it.
    walk = list(np.arange(36.0, 40.0, 0.1)) + [40 + 0.05 * (-1) ** i for i in range(20)]
    x1 = np.array(walk)
    n = len(x1)
    p = 1 / (1 + np.exp(-(x1 - 40) / 5))
    probe = pd.DataFrame(
        {
            "request_id": [f"p{i}" for i in range(n)],
            "ts": [T0 + timedelta(seconds=i) for i in range(n)],
            "key_id": "prober",
            "client": "7.7.7.7",
            "outcome": "ok",
            "in.x1": x1,
            "in.x2": 40.0,
            "out.label": (p > 0.5).astype(int),
            "out.proba": p,
        }
    )
    found = detect_attacks(pd.concat([_ordinary(), probe], ignore_index=True), scales={"x1": 10.0, "x2": 20.0})
    assert [(f.rule, f.key_id) for f in found] == [("evasion_probing", "prober")]
    assert found[0].evidence["flips"] >= 3 and found[0].evidence["boundary_share"] > 0.5


def test_failure_bursts_per_key_and_per_address() -> None:
    df = _ordinary()
    bad_key = pd.DataFrame({"request_id": [f"b{i}" for i in range(30)], "ts": T0, "key_id": "fuzzer",
                            "client": "8.8.8.8", "outcome": "invalid"})
    no_key = pd.DataFrame({"request_id": [f"u{i}" for i in range(15)], "ts": T0, "key_id": None,
                           "client": "9.9.9.9", "outcome": "unauthorized"})
    found = detect_attacks(pd.concat([df, bad_key, no_key], ignore_index=True))
    by_rule = {f.rule: f for f in found}
    assert by_rule["invalid_burst"].key_id == "fuzzer"
    assert by_rule["unauthorized_burst"].client == "9.9.9.9"
    assert by_rule["unauthorized_burst"].severity == Severity.CRITICAL
    assert by_rule["unauthorized_burst"].to_dict()["subject"] == "client:9.9.9.9"


def test_rules_can_be_disabled() -> None:
    df = pd.concat([_ordinary(), pd.DataFrame({"request_id": ["x"] * 40, "ts": T0, "key_id": "k", "client": "1.1.1.1",
                                               "outcome": "invalid"})], ignore_index=True)
    cfg = AttacksConfig.model_validate({"failures": {"enabled": False}})
    assert detect_attacks(df, cfg) == []
    assert detect_attacks(df.iloc[0:0]) == []
