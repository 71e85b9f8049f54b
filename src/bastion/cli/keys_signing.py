"""`bastion keys signing init|list|rotate|revoke|export|ca add|ca remove|ca list` (owned by the signing work;
`ca` by the team deployment work)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from bastion.cli._common import console, print_json, project
from bastion.cli._render import short


def _passphrase(confirm: bool) -> str:
    from bastion.crypto.signing.keys import PASSPHRASE_ENV

    value = os.environ.get(PASSPHRASE_ENV)
    if value:
        return value
    if not sys.stdin.isatty():
        from bastion.errors import KeyManagementError

        raise KeyManagementError(f"No passphrase for the signing key: {PASSPHRASE_ENV} is not set and there is "
                                 f"no terminal to ask in. Set {PASSPHRASE_ENV} or run in a terminal.")
    entered: str = typer.prompt("Passphrase for the signing key", hide_input=True, confirmation_prompt=confirm)
    return entered


def register(app: typer.Typer) -> None:
    """Add the `signing` sub-group to the `keys` group."""
    signing = typer.Typer(
        help="Signing keys (EC P-256/P-384) for model signatures and gate attestations.", no_args_is_help=True
    )

    @signing.command("init")
    def init(
        name: str = typer.Argument(..., help="Key name, e.g. 'release'."),
        curve: str = typer.Option("P-256", "--curve", help="P-256 or P-384."),
        cert: str = typer.Option(None, "--cert", help="PEM certificate chain (leaf first) for this key."),
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """Create a signing key, stored encrypted with a passphrase (BASTION_KEY_PASSPHRASE or prompt)."""
        from bastion.crypto.signing.keys import init_signing_key

        rec = init_signing_key(project(), name, passphrase=_passphrase(True), curve=curve, certificate_chain=cert)
        if json_out:
            print_json(rec.to_dict())
        else:
            console.print(f"Created signing key [bold]{rec.name}[/] ({rec.curve}, {rec.fingerprint}).")

    @signing.command("list")
    def list_(json_out: bool = typer.Option(False, "--json")) -> None:
        """List signing keys with their status (active, rotated, revoked)."""
        from bastion.crypto.signing.keys import list_signing_keys

        recs = list_signing_keys(project())
        if json_out:
            print_json([r.to_dict() for r in recs])
            return
        t = Table(title="Signing keys")
        for col in ("name", "status", "curve", "fingerprint", "created", "changed"):
            t.add_column(col)
        for r in recs:
            changed = r.revoked_at or r.rotated_at or ""
            t.add_row(r.name, r.status, r.curve, short(r.fingerprint, 23), r.created, changed)
        console.print(t)

    @signing.command("rotate")
    def rotate(
        name: str = typer.Argument(..., help="Key to replace."),
        curve: str = typer.Option(None, "--curve", help="Curve of the new key (default: same as the old)."),
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """Replace a key with a new one; signatures by the old key stay valid."""
        from bastion.crypto.signing.keys import rotate_signing_key

        rec = rotate_signing_key(project(), name, passphrase=_passphrase(True), curve=curve)
        if json_out:
            print_json(rec.to_dict())
        else:
            console.print(f"Rotated [bold]{rec.name}[/]: new key {rec.fingerprint}.")

    @signing.command("revoke")
    def revoke(
        name: str = typer.Argument(..., help="Key to revoke."),
        reason: str = typer.Option(..., "--reason", help="Why (goes into the audit log)."),
        fingerprint: str = typer.Option(None, "--fingerprint", help="Revoke this exact version of the key."),
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """Revoke a key: signatures made with it stop verifying."""
        from bastion.crypto.signing.keys import revoke_signing_key

        rec = revoke_signing_key(project(), name, reason=reason, fingerprint=fingerprint)
        if json_out:
            print_json(rec.to_dict())
        else:
            console.print(f"Revoked [bold]{rec.name}[/] ({rec.fingerprint}).")

    @signing.command("export")
    def export(name: str = typer.Argument(..., help="Key whose public key to print (PEM).")) -> None:
        """Print the active public key (PEM), e.g. for `model_signing verify key --public_key`."""
        from bastion.crypto.signing.keys import project_keyring

        rec = project_keyring(project()).active(name)
        typer.echo(rec.public_key, nl=False)

    ca_app = typer.Typer(help="Own-CA root certificates trusted for certificate signatures (shared, audited).",
                         no_args_is_help=True)

    @ca_app.command("add")
    def ca_add(
        pem: Path = typer.Argument(..., help="PEM file with one or more CA certificates.", exists=True,
                                   dir_okay=False),
        reason: str = typer.Option("", "--reason", help="Why this CA is trusted (audited)."),
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """Trust a CA for the whole deployment (every folder and server on this database); audited."""
        from bastion.crypto.signing.cas import add_trusted_ca

        added = add_trusted_ca(project(), pem.read_bytes(), source=str(pem), reason=reason)
        if json_out:
            print_json([c.to_dict() for c in added])
            return
        for c in added:
            console.print(f"Trusted CA [bold]{escape(c.subject)}[/] ({c.fingerprint}).")

    @ca_app.command("remove")
    def ca_remove(
        fingerprint: str = typer.Argument(..., help="sha256:<hex> from `ca list` (a unique prefix is enough)."),
        reason: str = typer.Option(..., "--reason", help="Why (audited)."),
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """Stop trusting a CA; audited."""
        from bastion.crypto.signing.cas import remove_trusted_ca

        c = remove_trusted_ca(project(), fingerprint, reason=reason)
        if json_out:
            print_json(c.to_dict())
        else:
            console.print(f"Removed trusted CA [bold]{escape(c.subject)}[/] ({c.fingerprint}).")

    @ca_app.command("list")
    def ca_list(json_out: bool = typer.Option(False, "--json")) -> None:
        """Trusted CAs, and rows verification ignores (not proven by the audit chain)."""
        from bastion.crypto.signing.cas import list_trusted_cas

        cas = list_trusted_cas(project())
        if json_out:
            print_json([c.to_dict() for c in cas])
            return
        t = Table(title="Trusted CAs")
        for col in ("subject", "fingerprint", "added", "by", "trusted"):
            t.add_column(col)
        for c in cas:
            t.add_row(escape(c.subject), short(c.fingerprint, 23), c.added_at, escape(c.added_by),
                      "yes" if c.trusted else "NO: " + escape(c.why))
        console.print(t)

    signing.add_typer(ca_app, name="ca")
    app.add_typer(signing, name="signing")
