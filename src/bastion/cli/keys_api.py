"""`bastion keys api create|list|revoke`: API keys for the model server (shown once, stored hashed)."""

from __future__ import annotations

import typer
from rich.table import Table

from bastion.cli._common import console, print_json, project


def register(app: typer.Typer) -> None:
    """Add the `api` sub-group to the `keys` group."""
    api = typer.Typer(help="API keys for `bastion serve` (roles: predict, explain, admin).", no_args_is_help=True)

    @api.command("create")
    def create(
        name: str = typer.Option(..., "--name", help="Who uses the key, e.g. billing-app."),
        role: list[str] = typer.Option(..., "--role", help="predict, explain or admin (repeat for several)."),
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """Create a key and print it once: only its SHA-256 digest is stored."""
        from bastion.serve.auth import create_api_key

        made = create_api_key(project(), name, role)
        if json_out:
            print_json(made.to_dict())
            return
        console.print(f"Created API key [bold]{made.record.name}[/] (id {made.record.id}, "
                      f"roles {', '.join(made.record.roles)}). Store it now; it is not shown again:")
        typer.echo(made.key)

    @api.command("list")
    def list_(json_out: bool = typer.Option(False, "--json")) -> None:
        """List keys (never the keys themselves): id, name, roles, status."""
        from bastion.serve.auth import list_api_keys

        recs = list_api_keys(project())
        if json_out:
            print_json([{k: v for k, v in r.to_dict().items() if k != "digest"} for r in recs])
            return
        t = Table(title="API keys")
        for col in ("id", "name", "roles", "status", "created", "revoked"):
            t.add_column(col)
        for r in recs:
            t.add_row(r.id, r.name, ",".join(r.roles), "active" if r.active else "revoked", r.created_at,
                      r.revoked_at or "")
        console.print(t)

    @api.command("revoke")
    def revoke(
        ident: str = typer.Argument(..., help="Key name, id or prefix."),
        reason: str = typer.Option("", "--reason", help="Why (goes into the audit log)."),
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """Revoke a key; running servers refuse it within a second, without restart."""
        from bastion.serve.auth import revoke_api_key

        rec = revoke_api_key(project(), ident, reason=reason)
        if json_out:
            print_json({k: v for k, v in rec.to_dict().items() if k != "digest"})
        else:
            console.print(f"Revoked API key [bold]{rec.name}[/] ({rec.id}).")

    app.add_typer(api, name="api")
