"""Robustness check: HopSkipJump evasion (ART) on a sample, plus prediction stability under feature noise.

The attack moves only numeric features, in standardized units; categorical values stay as they were.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from bastion.gates.checks._tabular import numeric_columns, positive_index, proba, scale, with_numeric
from bastion.gates.checks.interface import Check, CheckContext, CheckResult
from bastion.gates.policy import RobustnessSpec

__all__ = ["RobustnessCheck", "hsj_schedule"]

_CANDIDATES = 64  # other-class training rows tried as starting points per attacked row


def hsj_schedule(budget: int, init_eval: int = 10) -> tuple[int, int]:
    """(max_iter, max_eval) so that HopSkipJump's queries per row stay near ``budget``.

    Each iteration costs one gradient estimate (up to max_eval queries) plus about 25 queries of
    binary and step-size search.
    """
    max_eval = max(init_eval, min(100, budget // 8))
    total, it = 0, 0
    while True:
        cost = min(int(init_eval * math.sqrt(it + 1)), max_eval) + 25
        if total + cost > budget and it > 0:
            break
        total += cost
        it += 1
        if it >= 50:
            break
    return it, max_eval


class RobustnessCheck(Check):
    """Attack success rate at most ``max_attack_success_rate`` and stability at least ``min_stability``."""

    name: ClassVar[str] = "robustness"
    spec_model: ClassVar[type[RobustnessSpec]] = RobustnessSpec

    def run(self, context: CheckContext) -> CheckResult:
        spec = context.spec(self.name)
        assert isinstance(spec, RobustnessSpec)
        threshold = {
            "attack_success_rate": f"<= {spec.max_attack_success_rate}",
            "stability": f">= {spec.min_stability}",
        }
        if context.task != "classification":
            return CheckResult(self.name, {}, threshold, False, spec.required, {},
                               error="the robustness check supports binary classifiers only")
        feats = context.features
        cols = numeric_columns(feats)
        if not cols:
            return CheckResult(self.name, {}, threshold, False, spec.required, {},
                               error="no numeric features to perturb; the robustness check cannot run")
        rng = np.random.default_rng(context.seed)
        model = context.model
        pos = positive_index(model, context.positive_label)
        reference = context.train_data[feats.columns] if context.train_data is not None else feats
        mean, std = scale(reference, cols)

        # 1) stability under Gaussian noise of noise_scale standard deviations
        n_stab = min(spec.stability_sample_size, len(feats))
        idx = rng.choice(len(feats), n_stab, replace=False)
        base = feats.iloc[idx].reset_index(drop=True)
        clean = proba(model, base, pos).argmax(axis=1)
        x = base[cols].to_numpy(dtype=np.float64, na_value=np.nan)
        noisy_vals = x + rng.normal(0.0, spec.noise_scale, x.shape) * std
        noisy = proba(model, with_numeric(base, cols, noisy_vals), pos).argmax(axis=1)
        stability = float((noisy == clean).mean())

        # 2) HopSkipJump on correctly classified rows, started from other-class training rows
        attack = self._attack(context, spec, cols, mean, std, reference, pos, rng)
        measured = {"attack_success_rate": attack.pop("success_rate"), "stability": stability}
        passed = (
            measured["attack_success_rate"] is not None
            and measured["attack_success_rate"] <= spec.max_attack_success_rate
            and stability >= spec.min_stability
        )
        evidence = {
            "numeric_features": cols,
            "noise_scale_std": spec.noise_scale,
            "stability_rows": n_stab,
            "epsilon_l2_std_units": spec.epsilon,
            **attack,
        }
        return CheckResult(self.name, measured, threshold, passed, spec.required, evidence)

    def _attack(
        self, context: CheckContext, spec: RobustnessSpec, cols: list[str], mean: np.ndarray, std: np.ndarray,
        reference: pd.DataFrame, pos: int, rng: np.random.Generator,
    ) -> dict[str, Any]:
        from bastion.gates.checks._art import black_box_classifier, hop_skip_jump

        HopSkipJump, BlackBoxClassifier = hop_skip_jump(), black_box_classifier()

        model, feats = context.model, context.features
        correct = np.flatnonzero(context.y_pred == context.y_true)
        if len(correct) == 0:
            return {"success_rate": 1.0, "attacked_rows": 0, "note": "no correctly classified rows"}
        rows = rng.choice(correct, min(spec.sample_size, len(correct)), replace=False)
        ref_n = min(len(reference), 5_000)
        ref = reference.iloc[rng.choice(len(reference), ref_n, replace=False)].reset_index(drop=True)
        ref_pred = proba(model, ref, pos).argmax(axis=1)
        ref_z = (ref[cols].to_numpy(dtype=np.float64, na_value=np.nan) - mean) / std
        ref_z = np.nan_to_num(ref_z)
        lo = float(min(ref_z.min(), -5.0))
        hi = float(max(ref_z.max(), 5.0))
        max_iter, max_eval = hsj_schedule(spec.query_budget)

        successes, no_start, queries, dists = 0, 0, [], []
        for r in rows:
            row = feats.iloc[[int(r)]].reset_index(drop=True)
            z0 = np.clip(np.nan_to_num((row[cols].to_numpy(dtype=np.float64, na_value=np.nan) - mean) / std), lo, hi)
            label = int(context.y_pred[int(r)])
            counter = [0]

            def predict_fn(z: np.ndarray, _row: pd.DataFrame = row, _c: list[int] = counter) -> np.ndarray:
                z = np.asarray(z, dtype=np.float64).reshape(len(z), -1)
                _c[0] += len(z)
                frame = with_numeric(_row.iloc[np.zeros(len(z), dtype=int)], cols, z * std + mean)
                return proba(model, frame, pos)

            others = np.flatnonzero(ref_pred != label)
            if len(others) == 0:
                no_start += 1
                continue
            near = others[np.argsort(((ref_z[others] - z0) ** 2).sum(axis=1))[:_CANDIDATES]]
            cand = np.clip(ref_z[near], lo, hi)
            cand_pred = predict_fn(cand).argmax(axis=1)
            adv = np.flatnonzero(cand_pred != label)
            if len(adv) == 0:
                no_start += 1  # with its categorical values kept, no nearby training point flips it
                queries.append(counter[0])
                continue
            init = cand[adv[0]][None, :]
            clf = BlackBoxClassifier(predict_fn, input_shape=(len(cols),), nb_classes=2, clip_values=(lo, hi))
            hsj = HopSkipJump(clf, targeted=False, norm=2, max_iter=max_iter, max_eval=max_eval, init_eval=10,
                              verbose=False)
            x_adv = hsj.generate(z0.astype(np.float32), x_adv_init=init.astype(np.float32))
            dist = float(np.linalg.norm(x_adv[0] - z0[0]))
            flipped = int(predict_fn(x_adv).argmax(axis=1)[0]) != label
            queries.append(counter[0])
            if flipped:
                dists.append(dist)
                if dist <= spec.epsilon:
                    successes += 1
        n = len(rows)
        return {
            "success_rate": successes / n,
            "attacked_rows": n,
            "successful_attacks": successes,
            "rows_without_start_point": no_start,
            "median_adversarial_distance": float(np.median(dists)) if dists else None,
            "query_budget_per_row": spec.query_budget,
            "mean_queries_per_row": float(np.mean(queries)) if queries else 0.0,
            "hsj_max_iter": max_iter,
            "hsj_max_eval": max_eval,
        }
