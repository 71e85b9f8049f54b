"""Privacy check: ART black-box membership inference (random forest or gradient boosting attack model).

Members are training rows from the model's lineage; non-members are holdout rows. Measured: attack AUC.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn.metrics import roc_auc_score

from bastion.gates.checks._tabular import positive_index, proba
from bastion.gates.checks.interface import Check, CheckContext, CheckResult
from bastion.gates.policy import PrivacySpec

__all__ = ["PrivacyCheck"]


class PrivacyCheck(Check):
    """Membership-inference AUC must stay below ``max_auc`` (0.5 = the attacker guesses)."""

    name: ClassVar[str] = "privacy"
    spec_model: ClassVar[type[PrivacySpec]] = PrivacySpec

    def run(self, context: CheckContext) -> CheckResult:
        spec = context.spec(self.name)
        assert isinstance(spec, PrivacySpec)
        threshold = {"membership_auc": f"<= {spec.max_auc}"}
        if context.task != "classification":
            return CheckResult(self.name, {}, threshold, False, spec.required, {},
                               error="the privacy check supports classifiers only")
        train = context.train_data
        if train is None or context.target not in train.columns:
            return CheckResult(self.name, {}, threshold, False, spec.required, {},
                               error="no training rows with the target column in the model's lineage")
        from bastion.gates.checks._art import black_box_classifier, membership_inference

        MembershipInferenceBlackBox, BlackBoxClassifier = membership_inference(), black_box_classifier()

        from bastion.gates.run import labels_to_binary

        rng = np.random.default_rng(context.seed)
        n = min(spec.sample_size // 2, len(train), len(context.features))
        if n < 10:
            return CheckResult(self.name, {}, threshold, False, spec.required, {"rows": n},
                               error=f"too few rows for a membership-inference attack ({n})")
        model = context.model
        pos = positive_index(model, context.positive_label)
        mem_idx = rng.choice(len(train), n, replace=False)
        non_idx = rng.choice(len(context.features), n, replace=False)
        mem = train.iloc[mem_idx]
        mem_pred = proba(model, mem[context.features.columns], pos)
        mem_y = labels_to_binary(mem[context.target].to_numpy(), context.positive_label)
        non_pred = proba(model, context.features.iloc[non_idx], pos)
        non_y = context.y_true[non_idx].astype(np.int64)

        half = n // 2
        est = BlackBoxClassifier(lambda x: np.zeros((len(x), 2)), input_shape=(2,), nb_classes=2)
        attack = MembershipInferenceBlackBox(est, input_type="prediction", attack_model_type=spec.attack_model)
        attack.attack_model.set_params(random_state=context.seed)  # ART builds it unseeded
        attack.fit(x=None, y=mem_y[:half], test_x=None, test_y=non_y[:half],
                   pred=mem_pred[:half], test_pred=non_pred[:half])
        p_mem = attack.infer(None, mem_y[half:], pred=mem_pred[half:], probabilities=True)
        p_non = attack.infer(None, non_y[half:], pred=non_pred[half:], probabilities=True)
        scores = np.concatenate([np.asarray(p_mem).reshape(len(p_mem), -1)[:, -1],
                                 np.asarray(p_non).reshape(len(p_non), -1)[:, -1]])
        truth = np.concatenate([np.ones(len(p_mem)), np.zeros(len(p_non))])
        auc = float(roc_auc_score(truth, scores))
        evidence = {
            "attack": "MembershipInferenceBlackBox",
            "attack_model_type": spec.attack_model,
            "member_rows": n,
            "non_member_rows": n,
            "attack_train_rows_each": half,
            "attack_eval_rows_each": n - half,
        }
        return CheckResult(self.name, {"membership_auc": auc}, threshold, auc <= spec.max_auc, spec.required, evidence)
