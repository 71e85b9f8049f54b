"""`bastion data protect|reveal|validate` (owned by the protection work)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from bastion.cli._common import console, print_json, progress_bar, project

if TYPE_CHECKING:
    from bastion.data.protect.policy import Policy


def register(app: typer.Typer) -> None:
    """Add the protect, reveal and validate commands to the `data` group."""

    @app.command("protect")
    def protect(
        path: Path = typer.Argument(..., help="Raw Parquet or CSV file (never modified)."),
        output: Path = typer.Option(..., "--output", "-o", help="Protected Parquet file to write."),
        policy: Path = typer.Option(
            None, "--policy", help="bastion-policy.yaml with a 'protection:' section."
        ),
        name: str = typer.Option(None, "--name", "-n", help="Dataset name to register (default: file stem)."),
        engine: str = typer.Option(None, "--engine", help="local (default) or dask."),
        scheduler: str = typer.Option(
            None, "--scheduler", help="Dask scheduler address (default: LocalCluster)."
        ),
        no_register: bool = typer.Option(False, "--no-register", help="Do not register the output."),
        accept_residual: bool = typer.Option(
            False, "--accept-residual", help="Register even when identifiers survive (needs --reason; audited)."
        ),
        reason: str = typer.Option(None, "--reason", help="Why residual identifiers are accepted (audited)."),
        ner: str = typer.Option(
            None, "--ner", help="Opt-in NER for names in text: 'spacy:MODEL' (an installed spaCy model package)."
        ),
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """Protect PII per the policy (or the scan's defaults), write Parquet and register it with lineage."""
        from bastion.cli.keys_data import load_keyring
        from bastion.data.protect import protect_into_project, report_path_for
        from bastion.engine import get_engine

        chosen: Path | Policy | None = policy
        if ner is not None:
            import dataclasses

            from bastion.data.pii._ner import check_option
            from bastion.data.protect import Policy, load_policy

            check_option(ner)
            chosen = dataclasses.replace(load_policy(policy) if policy else Policy(), ner=ner)
        p = project()
        keyring = load_keyring(p, required=False)
        eng = get_engine(engine or p.settings.engine, scheduler=scheduler or p.settings.scheduler or None)
        try:
            with progress_bar("Protecting") as bar:
                report, dv = protect_into_project(
                    p,
                    path,
                    output,
                    policy=chosen,
                    keyring=keyring,
                    name=name,
                    engine=eng,
                    progress=bar,
                    register=not no_register,
                    accept_residual=accept_residual,
                    reason=reason,
                )
        finally:
            eng.close()
        doc = report.to_dict()
        if json_out:
            print_json({**doc, "dataset": dv.ref if dv else None})
            return
        table = Table("column", "entity", "operator", "spans", title=f"Protected {report.rows:,} rows")
        for c in report.columns:
            table.add_row(
                c.column,
                c.entity or "",
                c.operator,
                ", ".join(f"{k}:{v}" for k, v in sorted(c.spans.items())),
            )
        console.print(table)
        if report.k_anonymity:
            k = report.k_anonymity
            extra = f", min_k {k.min_k}" if k.min_k else ""
            if k.suppressed_rows:
                extra += f", {k.suppressed_rows:,} rows suppressed"
            if k.levels:
                extra += "; generalised: " + ", ".join(f"{q} to {lv}" for q, lv in k.levels.items())
            console.print(
                f"k-anonymity over {', '.join(k.quasi_identifiers)}: k = {k.k} ({k.classes:,} classes{extra})"
            )
        else:
            console.print("k-anonymity: no quasi-identifiers found (k not measured)")
        if report.linked:
            console.print(f"Row linkage found {sum(report.linked.values()):,} spans of rows' own identifiers")
        console.print(
            f"residual identifiers: {report.residual_identifiers}"
            + (" (accepted: " + (reason or "") + ")" if report.residual_identifiers else "")
        )
        console.print(
            f"Wrote {output} and {report_path_for(output)}"
            + (f"; registered [bold]{dv.ref}[/]" if dv else "")
        )

    @app.command("reveal")
    def reveal(
        path: Path = typer.Argument(..., help="Protected Parquet file."),
        columns: str = typer.Option(..., "--columns", "-c", help="Comma-separated columns to reveal."),
        role: str = typer.Option(
            ..., "--role", help="The role you reveal data in: audited, and checked against the policy's reveal section."
        ),
        output: Path = typer.Option(None, "--output", "-o", help="Write the revealed table here (Parquet)."),
        limit: int = typer.Option(20, "--limit", help="Rows to show when not writing a file."),
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """Detokenize/decrypt columns with the project's key; every reveal is audited."""
        from bastion.cli.keys_data import load_keyring
        from bastion.data.protect import check_reveal_allowed, reveal_audited

        p = project()
        cols = [c.strip() for c in columns.split(",") if c.strip()]
        check_reveal_allowed(p, path, cols, role)  # before the passphrase prompt
        result = reveal_audited(
            p, path, cols, keyring=lambda: load_keyring(p), role=role, output=output,
            limit=None if output else limit,
        )
        if json_out:
            doc = result.to_dict()
            if result.table is not None:
                doc["rows_shown"] = result.table.select(cols).to_pylist()
            print_json(doc)
            return
        if result.table is None:
            console.print(f"Revealed {', '.join(cols)} for {result.rows:,} rows into {output} (audited).")
            return
        table = Table(*cols, title=f"{path} (first {result.rows} rows, audited)")
        for row in result.table.select(cols).to_pylist():
            table.add_row(*("" if row[c] is None else str(row[c]) for c in cols))
        console.print(table)

    @app.command("validate")
    def validate(
        path: Path = typer.Argument(..., help="Data to check (Parquet or CSV)."),
        against: str = typer.Option(..., "--against", help="Dataset version whose schema is the contract."),
        null_rate_jump: float = typer.Option(0.05, "--null-rate-jump", help="Allowed rise of a null rate."),
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """Check data against a registered version's schema and statistics; exit 1 on violations."""
        from bastion.data.validate import Contract
        from bastion.data.validate import validate as run

        p = project()
        contract = Contract.from_version(p.get_dataset(against), null_rate_jump=null_rate_jump)
        report = run(path, contract)
        if json_out:
            print_json(report.to_dict())
        elif report.ok:
            console.print(f"{path}: {report.rows:,} rows match {contract.source}.")
        else:
            table = Table(
                "column",
                "check",
                "expected",
                "observed",
                "count",
                title=f"{len(report.violations)} violation(s) against {contract.source}",
            )
            for v in report.violations:
                table.add_row(v.column, v.check, v.expected, v.observed, str(v.count))
            console.print(table)
        if not report.ok:
            raise typer.Exit(1)
