"""`bastion gate run|mitigate` (owned by the gates work)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from bastion.cli._common import console, print_json, progress_bar, project
from bastion.errors import PolicyViolation

app = typer.Typer(help="Run deployment gates (policy checks) on model versions.", no_args_is_help=True)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, dict):
        return "\n".join(f"{k}: {_short(x)}" for k, x in v.items())
    return str(v)


def gate_table(result: Any) -> Table:
    """One row per check: measured values, thresholds, pass/fail."""
    t = Table(title=f"Gate {result.ref} — policy {result.policy_name} v{result.policy_version}")
    for col in ("check", "required", "measured", "threshold", "result"):
        t.add_column(col)
    for c in result.checks:
        verdict = "[green]pass[/]" if c.passed else "[red]FAIL[/]"
        measured = _short(c.measured) + (f"\n[red]{c.error}[/]" if c.error else "")
        t.add_row(c.name, "yes" if c.required else "no", measured, _short(c.threshold), verdict)
    return t


def _names(aliases: list[str]) -> str:
    return ("alias " if len(aliases) == 1 else "aliases ") + ", ".join(aliases)


def _aliases_needing_signature(policy: Path) -> list[str]:
    """Aliases whose rules require a signature (the gate attestation must then be signed)."""
    from bastion.gates.policy import load_policy

    pol = load_policy(policy)
    return sorted(name for name, rule in pol.aliases.items() if "signature" in rule.requires)


def _require_signing_key(p: Any, aliases: list[str], *, no_sign: bool) -> None:
    """Before any check runs: a usable signing key, asking for its passphrase in a terminal; else exit 1."""
    import os
    import sys

    from bastion.crypto.signing import load_signing_key
    from bastion.crypto.signing.keys import PASSPHRASE_ENV
    from bastion.errors import BastionError

    why = f"the policy's rules for {_names(aliases)} require a signature, so an unsigned gate attestation "\
          "could not be promoted or served there"
    if no_sign:
        raise PolicyViolation(f"--no-sign refused: {why}. Run without --no-sign.")
    try:
        load_signing_key(p)
        return
    except BastionError as e:
        problem = e.message
    if not os.environ.get(PASSPHRASE_ENV) and "encrypted" in problem and sys.stdin.isatty():
        secret = typer.prompt("Signing key passphrase", hide_input=True)
        try:
            load_signing_key(p, passphrase=secret)
        except BastionError as e:
            raise PolicyViolation(f"Cannot sign the gate attestation: {e.message} ({why}).") from None
        os.environ[PASSPHRASE_ENV] = secret  # for the signing step of this run only (this process)
        return
    raise PolicyViolation(f"Cannot sign the gate attestation: {problem} The gate did not run: {why}. "
                          f"Set {PASSPHRASE_ENV} (or run in a terminal to be asked), or create a key with "
                          "`bastion keys signing init NAME`.")


@app.command("run")
def run(
    ref: str = typer.Argument(..., help="Model version, NAME:VERSION or NAME@ALIAS."),
    policy: Path = typer.Option(Path("bastion-policy.yaml"), "--policy", "-p", help="Policy file."),
    data: str = typer.Option(..., "--data", "-d", help="Holdout data: Parquet/CSV file or dataset reference."),
    target: str | None = typer.Option(None, "--target", "-t", help="Target column (default: the policy's)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    html: Path | None = typer.Option(None, "--html", help="Also write a self-contained HTML report here."),
    json_out: Path | None = typer.Option(None, "--json-out", help="Also write the JSON report here."),
    no_sign: bool = typer.Option(False, "--no-sign", help="Do not sign the attestation even if a key exists."),
    project_dir: str | None = typer.Option(None, "--project", help="Project folder (default: nearest)."),
) -> None:
    """Run every check of the policy; exit 1 if a required check fails."""
    from bastion.gates.report import write_report
    from bastion.gates.run import run_gate

    p = project(project_dir)
    needs = _aliases_needing_signature(policy)
    if needs:
        _require_signing_key(p, needs, no_sign=no_sign)
    with progress_bar("gate checks", enabled=not as_json) as prog:
        result = run_gate(p, ref, policy, data, target, sign=not no_sign, progress=prog)
    write_report(result, json_path=json_out, html_path=html)
    if needs and not result.attestation.get("signed"):  # belt and braces: never exit 0 with a useless gate
        raise PolicyViolation(f"The gate attestation of {result.ref} is unsigned, but the policy's rules for "
                              f"{_names(needs)} require a signature; it could not be promoted or served there.")
    if as_json:
        print_json(result.to_dict())
    else:
        console.print(gate_table(result))
        verdict = "[bold green]PASSED[/]" if result.passed else "[bold red]FAILED[/]"
        att = result.attestation
        console.print(f"Gate {verdict}; attestation {att.get('statement_digest')} "
                      f"({'signed' if att.get('signed') else 'unsigned'}).")
        if html:
            console.print(f"HTML report: {html}")
    if not result.passed:
        raise typer.Exit(1)


@app.command("mitigate")
def mitigate_cmd(
    ref: str = typer.Argument(..., help="Model version to mitigate."),
    method: str = typer.Option("threshold", "--method", "-m", help="threshold (ThresholdOptimizer) or expgrad."),
    data: str = typer.Option(..., "--data", "-d", help="Training data: Parquet/CSV file or dataset reference."),
    target: str = typer.Option(..., "--target", "-t", help="Target column."),
    sensitive: list[str] = typer.Option(..., "--sensitive", "-s", help="Sensitive column (repeat for several)."),
    constraints: str = typer.Option("demographic_parity", "--constraints",
                                    help="demographic_parity, equalized_odds or true_positive_rate_parity."),
    as_json: bool = typer.Option(False, "--json", help="Print the new version as JSON."),
    project_dir: str | None = typer.Option(None, "--project", help="Project folder (default: nearest)."),
) -> None:
    """Fit a fairness mitigation and register it as a new version (parent = REF)."""
    from bastion.errors import ConfigError
    from bastion.gates.mitigate import mitigate

    if method not in {"threshold", "expgrad"}:
        raise ConfigError(f"--method must be 'threshold' or 'expgrad'; got {method!r}.")
    p = project(project_dir)
    mv = mitigate(p, ref, method=method, data=data, target=target,  # type: ignore[arg-type]
                  sensitive=sensitive, constraints=constraints)
    if as_json:
        print_json(mv.to_dict())
    else:
        console.print(f"Registered {mv.ref} (parent {mv.parent}); run `bastion gate run {mv.ref} ...` next.")


__all__ = ["app", "gate_table"]
