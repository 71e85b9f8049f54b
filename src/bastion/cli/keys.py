"""`bastion keys …`: one group, three kinds of key (data, signing, api)."""

from __future__ import annotations

import typer

from bastion.cli import keys_data, keys_signing

app = typer.Typer(help="Manage the project's keys: data (encryption), signing and API keys.", no_args_is_help=True)

keys_data.register(app)
keys_signing.register(app)

from bastion.cli import keys_api  # noqa: E402 - the serve work's integration line

keys_api.register(app)
