"""`bastion users add|list|remove|unlock`: dashboard users (argon2-hashed passwords, roles viewer|operator|admin)."""

from __future__ import annotations

import os

import typer

app = typer.Typer(help="Dashboard users and their roles.", no_args_is_help=True)


@app.command("add")
def add(
    name: str = typer.Argument(..., help="User name (letters, digits, '_.@-')."),
    role: str = typer.Option(..., "--role", help="viewer (read only), operator (promote/rollback) or admin."),
    replace: bool = typer.Option(False, "--replace", help="Reset the password and role of an existing user."),
    project_dir: str = typer.Option(None, "--project", help="Project folder (default: nearest above cwd)."),
    as_json: bool = typer.Option(False, "--json", help="Print the user as JSON."),
) -> None:
    """Add a user; the password comes from BASTION_UI_PASSWORD or a prompt (never an argument)."""
    from bastion.cli._common import console, print_json, project
    from bastion.ui.users import UserStore

    password = os.environ.get("BASTION_UI_PASSWORD") or typer.prompt(
        f"Password for {name}", hide_input=True, confirmation_prompt=True
    )
    user = UserStore(project(project_dir)).add(name, password, role=role, replace=replace)
    if as_json:
        print_json(user.to_dict())
    else:
        console.print(f"User {user.name} ({user.role}) saved.")


@app.command("list")
def list_users(
    project_dir: str = typer.Option(None, "--project", help="Project folder (default: nearest above cwd)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List dashboard users and their roles (never their hashes)."""
    from rich.table import Table

    from bastion.cli._common import console, print_json, project
    from bastion.ui.users import UserStore

    users = UserStore(project(project_dir)).list()
    if as_json:
        print_json([u.to_dict() for u in users])
        return
    table = Table("User", "Role", "Created", "By")
    for u in users:
        table.add_row(u.name, u.role, u.created_at, u.created_by)
    console.print(table)


@app.command("remove")
def remove(
    name: str = typer.Argument(..., help="User name."),
    project_dir: str = typer.Option(None, "--project", help="Project folder (default: nearest above cwd)."),
) -> None:
    """Remove a user (their sessions stop working at the next request)."""
    from bastion.cli._common import console, project
    from bastion.ui.users import UserStore

    UserStore(project(project_dir)).remove(name)
    console.print(f"User {name} removed.")


@app.command("unlock")
def unlock(
    name: str = typer.Argument(..., help="User name."),
    project_dir: str = typer.Option(None, "--project", help="Project folder (default: nearest above cwd)."),
) -> None:
    """Lift a user's login lockout now (failed logins from several addresses lock an account for a while)."""
    from bastion.cli._common import console, project
    from bastion.ui.users import UserStore

    cleared = UserStore(project(project_dir)).unlock(name)
    console.print(f"User {name} unlocked." if cleared else f"User {name} was not locked out; nothing to do.")
