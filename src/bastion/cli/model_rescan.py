"""`bastion model rescan`: re-scan a stored artifact with today's scanner rules (thin door)."""

from __future__ import annotations

import typer

from bastion.cli._common import console, print_json, project


def register(app: typer.Typer) -> None:
    @app.command("rescan")
    def rescan(
        ref: str = typer.Argument(..., help="NAME@ALIAS or NAME:VERSION."),
        json_: bool = typer.Option(False, "--json", help="Print the result as JSON."),
        no_alerts: bool = typer.Option(False, "--no-alerts", help="Do not send alerts or roll back (report only)."),
    ) -> None:
        """Verify the stored artifact's digest, scan it again and store the report; exit 1 on a new finding."""
        from bastion.vulns.rescan import rescan as run_rescan
        from bastion.vulns.respond import respond

        p = project()
        served = tuple(p.get_model(ref).aliases)
        result = run_rescan(p, ref)
        response = respond(p, rescans=[(result, served)]) if not no_alerts else {}
        doc = result.to_dict()
        doc["alerts"] = [a.to_dict() for a in response.get("alerts", [])]
        doc["rollbacks"] = response.get("rollbacks", [])
        if json_:
            print_json(doc)
        else:
            console.print(f"Re-scanned {result.ref} (digest verified) with scanner {result.scanner_version}, rules "
                          f"{result.rules_version}: {result.findings} finding(s), status {result.status}.",
                          soft_wrap=True, highlight=False, markup=False)
            for f in result.new_findings:
                console.print(f"NEW FINDING {f.get('severity')} {f.get('rule_id')}:{f.get('construct')} in "
                              f"{f.get('file')}: {f.get('message')}", soft_wrap=True, highlight=False, markup=False)
            for a in doc["alerts"]:
                console.print(f"ALERT [{a['severity']}] {a['rule']}: {a['message']}", soft_wrap=True,
                              highlight=False, markup=False)
            for r in doc["rollbacks"]:
                if r.get("rolled_back"):
                    console.print(f"Rolled back {r['model']}@{r['alias']}: version {r['from_version']} -> "
                                  f"{r['to_version']}")
                else:
                    console.print(f"Not rolled back {r['model']}@{r['alias']}: {r['reason']}", soft_wrap=True)
        if result.exit_code:
            raise typer.Exit(result.exit_code)
