"""Gates benchmark: Bastion's vectorized fairness metrics vs fairlearn at 1M rows, and a full 100k-row gate.

Run from the repository root:  .venv/bin/python bench/gates/run.py [--rows 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.append(str(Path(__file__).resolve().parents[1]))  # bench/: _freeze records versions and load
from _freeze import record_environment

from bastion.demo.data import ADULT_CATEGORICAL, ADULT_FEATURES, ADULT_NUMERIC, ADULT_TARGET, load_adult
from bastion.gates.fairness import compute_fairness

GROUPINGS = [("sex",), ("race",), ("sex", "race")]


def baseline():
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer([("num", StandardScaler(), ADULT_NUMERIC),
                             ("cat", OneHotEncoder(handle_unknown="ignore"), ADULT_CATEGORICAL)])
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))])


def fairlearn_all(y_true, y_pred, sf: pd.DataFrame) -> dict:
    from fairlearn.metrics import (
        MetricFrame,
        count,
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
        equalized_odds_ratio,
        false_negative_rate,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    out = {}
    metrics = {"selection_rate": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate,
               "fnr": false_negative_rate, "accuracy": accuracy_score, "count": count}
    for g in GROUPINGS:
        feats = sf[list(g)] if len(g) > 1 else sf[g[0]]
        mf = MetricFrame(metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=feats)
        out[g] = {
            "by_group": mf.by_group.dropna(how="all"),
            "demographic_parity_difference": demographic_parity_difference(y_true, y_pred, sensitive_features=feats),
            "demographic_parity_ratio": demographic_parity_ratio(y_true, y_pred, sensitive_features=feats),
            "equalized_odds_difference": equalized_odds_difference(y_true, y_pred, sensitive_features=feats),
            "equalized_odds_ratio": equalized_odds_ratio(y_true, y_pred, sensitive_features=feats),
        }
    return out


def compare(ours, theirs) -> float:
    worst = 0.0
    for g in GROUPINGS:
        t = ours.get(*g).table()
        fl = theirs[g]["by_group"]
        for m in ("selection_rate", "tpr", "fpr", "fnr", "accuracy", "count"):
            worst = max(worst, float(np.max(np.abs(t[m].to_numpy(float) - fl[m].to_numpy(float)))))
        for k in ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference",
                  "equalized_odds_ratio"):
            worst = max(worst, abs(ours.get(*g).disparities[k] - float(theirs[g][k])))
    assert worst <= 1e-9, f"values differ by {worst}"
    return worst


CPU: dict[int, list[float]] = {}  # id(times list) -> CPU seconds of the same runs


def median_time(fn, runs: int) -> tuple[float, list[float], object]:
    """Median wall time of ``runs`` calls; the process CPU seconds of each call go to ``CPU[id(times)]``."""
    times: list[float] = []
    cpu: list[float] = []
    result = None
    for _ in range(runs):
        c0, t0 = time.process_time(), time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    CPU[id(times)] = cpu
    return (statistics.median(times) if times else float("nan")), times, result


def bench_fairness(rows: int, runs: int, fl_runs: int) -> dict:
    """Bastion ``runs`` times and fairlearn ``fl_runs`` times (0: Bastion only) on the same ``rows`` rows."""
    train, test = load_adult("train"), load_adult("test")
    model = baseline().fit(train[ADULT_FEATURES], train[ADULT_TARGET])
    pred = model.predict(test[ADULT_FEATURES])
    idx = np.random.default_rng(0).integers(0, len(test), rows)
    y_true = test[ADULT_TARGET].to_numpy()[idx]
    y_pred = pred[idx]
    sf = test[["sex", "race"]].iloc[idx].reset_index(drop=True)
    b_med, b_times, ours = median_time(
        lambda: compute_fairness(y_true, y_pred, sf, groupings=GROUPINGS, min_group_size=30), runs)
    f_med, f_times, theirs = median_time(lambda: fairlearn_all(y_true, y_pred, sf), fl_runs)
    worst = compare(ours, theirs) if fl_runs else float("nan")
    b_cpu, f_cpu = CPU[id(b_times)], CPU[id(f_times)]
    return {"rows": rows, "bastion_s": b_med, "bastion_runs": b_times, "bastion_cpu": b_cpu,
            "fairlearn_s": f_med, "fairlearn_runs": f_times, "fairlearn_cpu": f_cpu, "speedup": f_med / b_med,
            "cpu_speedup": (statistics.median(f_cpu) / statistics.median(b_cpu)) if fl_runs else float("nan"),
            "max_abs_diff": worst}


def bench_gate(rows: int, runs: int) -> dict:
    import logging

    from bastion.gates import run_gate
    from bastion.project import init_project

    logging.getLogger("bastion").setLevel(logging.ERROR)
    train, test = load_adult("train"), load_adult("test")
    holdout = test.sample(rows, replace=True, random_state=0).reset_index(drop=True)
    policy = {
        "version": 1, "name": "bench", "positive_label": 1, "sensitive_attributes": ["sex", "race"],
        "intersections": [["sex", "race"]], "min_group_size": 50,
        "checks": {
            "performance": {"thresholds": {"accuracy": 0.8}},
            "fairness": {"thresholds": {"demographic_parity_difference": 0.2}},
            "diversity": {"min_share": 0.005},
            "robustness": {"sample_size": 20, "query_budget": 500, "stability_sample_size": 5000},
            "privacy": {"sample_size": 5000, "attack_model": "rf"},
            "supply_chain": {"require_clean_scan": True},
        },
    }
    with tempfile.TemporaryDirectory() as d:
        p = init_project(Path(d) / "proj")
        dv = p.register_dataset(train, name="adult-train")
        mv = p.log_model(baseline().fit(train[ADULT_FEATURES], train[ADULT_TARGET]), name="income",
                         datasets=[dv.ref])
        med, times, res = median_time(lambda: run_gate(p, mv.ref, policy, holdout, ADULT_TARGET), runs)
        checks = {c.name: c.passed for c in res.checks}
        p.close()
    return {"rows": rows, "gate_s": med, "gate_runs": times, "gate_cpu": CPU[id(times)], "passed": res.passed,
            "checks": checks}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--fairlearn-runs", type=int, default=3)
    ap.add_argument("--gate-rows", type=int, default=100_000, help="0: no full-gate run")
    ap.add_argument("--fairness-rows", type=int, nargs="+", default=None,
                    help="row counts for the fairness comparison (default: --rows)")
    ap.add_argument("--fairlearn-max-rows", type=int, default=None,
                    help="run fairlearn only at sizes up to this (it costs minutes per run at 1M rows)")
    args = ap.parse_args()
    env = record_environment(Path(__file__).parent, {"bastion": sys.executable})
    ok = True
    for rows in args.fairness_rows or [args.rows]:
        peer_runs = args.fairlearn_runs if args.fairlearn_max_rows is None or rows <= args.fairlearn_max_rows else 0
        f = bench_fairness(rows, args.runs, peer_runs)
        print(f"fairness {f['rows']:,} rows, sex/race/sex x race: Bastion {f['bastion_s']:.3f} s "
              f"(runs {[round(t, 3) for t in f['bastion_runs']]}; CPU s {[round(t, 3) for t in f['bastion_cpu']]}), "
              f"fairlearn {f['fairlearn_s']:.1f} s (runs {[round(t, 1) for t in f['fairlearn_runs']]}; "
              f"CPU s {[round(t, 1) for t in f['fairlearn_cpu']]}), speed-up {f['speedup']:.0f}x wall, "
              f"{f['cpu_speedup']:.0f}x CPU, max |diff| {f['max_abs_diff']:.1e}", flush=True)
        ok = ok and not f["speedup"] < 100  # NaN (no fairlearn run at this size) decides nothing
    if args.gate_rows:
        g = bench_gate(args.gate_rows, args.runs)
        print(f"full gate {g['rows']:,} rows (2 sensitive attrs + intersection, robustness + privacy): "
              f"median {g['gate_s']:.1f} s (runs {[round(t, 1) for t in g['gate_runs']]}; "
              f"CPU s {[round(t, 1) for t in g['gate_cpu']]}), passed={g['passed']}")
        ok = ok and g["gate_s"] < 60
    print("BARS:", "met" if ok else "NOT met", "(fairness speed-up >= 100x; gate < 60 s)")
    env.finish()
    print(env.markdown())


if __name__ == "__main__":
    main()
