"""Demo stage 3: gate the first model (fails fairness on Adult), mitigate, gate the mitigated version (passes)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from bastion.crypto.signing import init_signing_key, list_signing_keys
from bastion.errors import PolicyViolation
from bastion.gates.mitigate import mitigate
from bastion.gates.policy import POLICY_FILE, load_policy
from bastion.gates.report import write_report
from bastion.gates.run import run_gate
from bastion.gates.signatures import sign_version

if TYPE_CHECKING:
    from bastion.demo.run import DemoContext

__all__ = ["DEMO_POLICY", "run"]

DEMO_POLICY = """\
# Bastion gate policy for the demo income model (see docs/gates.md).
version: 1
name: income-production
positive_label: 1
sensitive_attributes: [sex, race]
intersections:
  - [sex, race]
min_group_size: 50
checks:
  performance:
    thresholds: {accuracy: 0.80}
  fairness:
    thresholds:
      demographic_parity_difference: 0.15
  diversity:
    min_share: 0.005
    expected_groups: {sex: [Female, Male]}
  robustness:
    sample_size: 8
    query_budget: 400
    epsilon: 0.5
    max_attack_success_rate: 0.75
    min_stability: 0.9
  privacy:
    sample_size: 2000
    attack_model: rf
    max_auc: 0.6
  supply_chain:
    require_clean_scan: true
aliases:
  production:
    requires: [gate, signature, scan]
"""

DEMO_KEY = "demo-signer"
DEMO_PASSPHRASE = "demo passphrase: not for production"  # noqa: S105 - the demo's throwaway key


def run(ctx: DemoContext) -> None:
    p, say, st = ctx.project, ctx.say, ctx.state
    policy_path = p.root / POLICY_FILE
    if not policy_path.exists():
        policy_path.write_text(DEMO_POLICY, encoding="utf-8")
    policy = load_policy(policy_path)
    # the demo's signing key is passphrase-protected like a real one; the passphrase lives in the env
    os.environ.setdefault("BASTION_KEY_PASSPHRASE", DEMO_PASSPHRASE)
    passphrase = os.environ["BASTION_KEY_PASSPHRASE"]
    if not any(k.name == DEMO_KEY for k in list_signing_keys(p)):
        init_signing_key(p, DEMO_KEY, passphrase=passphrase)
        say(f"Created signing key '{DEMO_KEY}' (EC P-256, encrypted with a passphrase via scrypt)")
    holdout, target = st["test_df"], st["target"]
    first = run_gate(p, st["model_ref"], policy, holdout, target)
    fair = first.check("fairness")
    say(f"Gate on {first.ref}: {'PASSED' if first.passed else 'FAILED'} "
        f"(sex DP difference {fair.measured.get('sex: demographic_parity_difference', float('nan')):.3f})")
    write_report(first, html_path=ctx.workdir / "gate-first.html")
    mitigated = mitigate(p, st["model_ref"], method="threshold", data=st["train_df"], target=target,
                         sensitive=list(st.get("sensitive", ["sex", "race"])))
    say(f"Mitigated with fairlearn ThresholdOptimizer -> {mitigated.ref} (parent {mitigated.parent})")
    sign_version(p, mitigated.ref, key_name=DEMO_KEY, passphrase=passphrase)
    say(f"Signed {mitigated.ref} (OpenSSF model-signing bundle, one SHA-256 per file)")
    second = run_gate(p, mitigated.ref, policy, holdout, target)
    fair2 = second.check("fairness")
    say(f"Gate on {second.ref}: {'PASSED' if second.passed else 'FAILED'} "
        f"(sex DP difference {fair2.measured.get('sex: demographic_parity_difference', float('nan')):.3f}); "
        f"attestation {'signed' if second.attestation.get('signed') else 'unsigned'}")
    write_report(second, html_path=ctx.workdir / "gate-mitigated.html")
    st["gate_results"] = [first.to_dict(), second.to_dict()]
    if not second.passed:
        failed = ", ".join(second.failed_required)
        raise PolicyViolation(f"The mitigated model {second.ref} did not pass its gate ({failed}).")
    try:
        p.promote(first.ref, alias="production")
    except PolicyViolation as e:  # the refusal is the point: show it
        say(f"Promotion of {first.ref} refused: {str(e).split(': ', 1)[-1][:150]}…")
    p.promote(second.ref, alias="production")
    say(f"Promoted {second.ref} to income@production (gate passed, signature valid, scan clean)")
    # a retrained candidate goes through the same path and replaces it, so production has a history
    retrained = mitigate(p, st["model_refs"][-1], method="threshold", data=st["train_df"], target=target,
                         sensitive=list(st.get("sensitive", ["sex", "race"])))
    sign_version(p, retrained.ref, key_name=DEMO_KEY, passphrase=passphrase)
    third = run_gate(p, retrained.ref, policy, holdout, target)
    if not third.passed:
        raise PolicyViolation(f"The retrained model {third.ref} did not pass its gate.")
    p.promote(third.ref, alias="production")
    say(f"Retrained {third.ref} from {st['model_refs'][-1]}: mitigated, signed, gate passed, promoted to production")
    st["previous_ref"] = second.ref
    st["approved_ref"] = third.ref
