"""`bastion keys init` and `bastion keys data …` (owned by the protection work)."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from rich.table import Table

from bastion.cli._common import console, err_console, print_json, project
from bastion.crypto.keys import (
    ENV_VAR,
    PASSPHRASE_ENV,
    EnvKeyProvider,
    FileKeyProvider,
    KeyProvider,
    Keyring,
    keyring_path,
    project_data_keyring,
    resolve_provider,
    rotate_project_master_key,
)
from bastion.errors import KeyManagementError

NEW_PASSPHRASE_ENV = "BASTION_NEW_KEY_PASSPHRASE"  # noqa: S105 - a variable name, not a secret


def _ask_passphrase(prompt: str, *, confirm: bool) -> str:
    value = os.environ.get(PASSPHRASE_ENV)
    if value:
        return value
    if not sys.stdin.isatty():  # a bare "aborted." helps nobody in CI or a script
        raise KeyManagementError(
            f"No passphrase: {PASSPHRASE_ENV} is not set and there is no terminal to ask in. Set "
            f"{PASSPHRASE_ENV}, run in a terminal, or (development only) use `bastion keys init --no-passphrase`."
        )
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


def load_provider(settings: Any, *, required: bool = True) -> KeyProvider | None:
    """The project's master key: ``BASTION_MASTER_KEY``, else the key file (asks for its passphrase)."""
    path = settings.key_path
    if not os.environ.get(ENV_VAR) and not path.is_file():
        if required:
            raise KeyManagementError(
                f"No master key file at {path}. Run `bastion keys init`, or set {ENV_VAR}."
            )
        return None
    try:
        return resolve_provider(path)
    except KeyManagementError:
        if os.environ.get(ENV_VAR) or os.environ.get(PASSPHRASE_ENV):
            raise
    # protected and no passphrase in the environment: ask (a wrong one still fails clearly)
    return resolve_provider(path, passphrase=_ask_passphrase(f"Passphrase for {path}", confirm=False))


def load_keyring(project: Any, *, required: bool = True) -> Keyring | None:
    """The project's data key ring (in its database) opened with this machine's master key."""
    provider = load_provider(project.settings, required=required)
    return project_data_keyring(project, provider) if provider is not None else None


def register(app: typer.Typer) -> None:
    """Add `init` and the `data` sub-group to the `keys` group."""
    data_app = typer.Typer(
        help="Data keys (encryption and tokenization) wrapped by the master key.", no_args_is_help=True
    )

    @app.command("init")
    def init(
        no_passphrase: bool = typer.Option(
            False, "--no-passphrase", help="Development only: store the master key unencrypted (audited)."
        ),
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """Create the project's master key (passphrase from BASTION_KEY_PASSPHRASE or a prompt)."""
        from bastion.data.protect import init_project_keys

        p = project()
        path = p.settings.key_path
        passphrase = None if no_passphrase else _ask_passphrase("New key passphrase", confirm=True)
        provider = init_project_keys(p, passphrase=passphrase)
        doc = {
            "schema_version": 1,
            "master_key_id": provider.key_id,
            "key_file": str(path),
            "protected": not no_passphrase,
        }
        if json_out:
            print_json(doc)
            return
        console.print(f"Created master key [bold]{provider.key_id}[/] in {path} (mode 0600).")
        if no_passphrase:
            err_console.print(
                "[yellow]warning:[/] the key is stored without a passphrase (development mode); "
                "this was recorded in the audit log."
            )

    @data_app.command("rotate")
    def rotate(
        new_key_env: str = typer.Option(
            None, "--new-key-env", help="With BASTION_MASTER_KEY: the variable holding the new master key."
        ),
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """Re-wrap every data key under a new master key (the data is not re-encrypted)."""
        p = project()
        old = load_provider(p.settings)
        assert old is not None
        new_provider: KeyProvider | None = None
        new_passphrase: str | None = None
        if isinstance(old, EnvKeyProvider):
            if not new_key_env:
                raise KeyManagementError(
                    f"The master key comes from {ENV_VAR}; give --new-key-env VAR naming the "
                    "variable that holds the new key."
                )
            new_provider = EnvKeyProvider(new_key_env)
        elif isinstance(old, FileKeyProvider) and old.protected:
            new_passphrase = (
                os.environ.get(NEW_PASSPHRASE_ENV)
                or os.environ.get(PASSPHRASE_ENV)
                or str(typer.prompt("Passphrase for the new key", hide_input=True, confirmation_prompt=True))
            )
        result = rotate_project_master_key(p, old, new_passphrase=new_passphrase, new_provider=new_provider)
        if json_out:
            print_json(result.to_dict())
        else:
            console.print(
                f"Re-wrapped {result.data_keys} data key(s): master key {result.old_key_id} -> "
                f"[bold]{result.new_key_id}[/]."
            )

    @data_app.command("list")
    def list_(json_out: bool = typer.Option(False, "--json")) -> None:
        """List the project's data keys (ids, purpose, scope; never key material)."""
        p = project()
        entries = Keyring.list_entries(keyring_path(p.settings.key_path), project=p)
        if json_out:
            print_json([e.to_dict() for e in entries])
            return
        table = Table("key id", "purpose", "scope", "created", "wrapped by")
        for e in entries:
            table.add_row(e.key_id, e.purpose, e.scope, e.created, ", ".join(e.master_key_ids))
        console.print(table)

    app.add_typer(data_app, name="data")
