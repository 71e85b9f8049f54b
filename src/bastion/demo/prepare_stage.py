"""Demo stage 1: find PII in a raw table, protect it under managed keys, validate, and hand the clean
version to training."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from bastion.data import Contract, validate
from bastion.data.pii import scan_table
from bastion.data.protect import init_project_keys, open_project_keyring, protect_into_project
from bastion.demo.identities import load_raw_demo_table

if TYPE_CHECKING:
    from bastion.demo.run import DemoContext

DEMO_PASSPHRASE = "demo passphrase: not for production"  # noqa: S105 - the demo's throwaway key


def run(ctx: DemoContext) -> None:
    p, say = ctx.project, ctx.say
    raw = load_raw_demo_table()
    raw_path = ctx.workdir / "raw" / "patients.parquet"
    raw_path.parent.mkdir(parents=True, exist_ok=True)
    raw.to_parquet(raw_path, index=False)
    say(f"Raw table: {len(raw):,} Adult census rows with generated identities attached ({raw_path.name})")

    report = scan_table(raw_path)
    for f in report.pii_columns():
        what = f.entity or "free text: " + ", ".join(f"{k} x{v}" for k, v in sorted(f.spans_found.items()))
        example = f.masked_examples[0] if f.masked_examples else ""
        say(f"  PII {f.column:<15} {what:<40} confidence {f.confidence:.2f}  e.g. {example}")

    # the project's master key is passphrase-protected like a real one; the passphrase lives in the env
    passphrase = os.environ.setdefault("BASTION_KEY_PASSPHRASE", DEMO_PASSPHRASE)
    provider = init_project_keys(p, passphrase=passphrase)
    keyring = open_project_keyring(p, passphrase=passphrase)
    say(f"Master key {provider.key_id} created (scrypt-wrapped, mode 0600); data keys are wrapped by it")

    clean_path = ctx.workdir / "clean" / "patients.parquet"
    prot, dv = protect_into_project(p, raw_path, clean_path, keyring=keyring, name="patients")
    ops = ", ".join(f"{c.column}={c.operator}" for c in prot.columns if c.operator != "keep")
    say(f"Protected -> {dv.ref}: {ops}")
    if prot.k_anonymity is not None:
        k = prot.k_anonymity
        say(f"k-anonymity over {', '.join(k.quasi_identifiers)}: k={k.k} ({k.classes:,} classes; "
            "generalize further before sharing this table outside the training enclave)")
    clean = p.read_dataset(dv.ref)
    # the residual check re-scanned the output with every detector and the row linkage (a non-zero count
    # would have stopped protect_into_project); names are also looked for verbatim in the clean notes
    names_left = sum(1 for name, note in zip(raw["patient_name"], clean["notes"], strict=True) if name in note)
    linked = sum(prot.linked.values())
    say(f"Row linkage found {linked:,} of the rows' own identifiers in their notes (names outside the bundled "
        "dictionaries among them) and protected them with the detectors' spans")
    residual = prot.residual_identifiers
    say(f"Clean version holds no raw identifiers: {'yes' if residual == 0 and not names_left else 'NO'} "
        f"(residual identifiers: {residual}; patient names left verbatim in notes: {names_left})")

    drifted = clean.sample(2000, random_state=1).copy()
    drifted["age"] = drifted["age"] + 80  # ages the contract never saw
    check = validate(drifted, Contract.from_version(dv))
    first = check.violations[0] if check.violations else None
    example = f"{first.column} {first.check}: expected {first.expected}, got {first.observed}" if first else "-"
    say(f"Validation of a bad batch against {dv.ref}: {len(check.violations)} violation(s), e.g. {example}")

    ctx.state["raw_path"] = raw_path
    ctx.state["train_df"] = clean
    ctx.state["dataset_ref"] = dv.ref
