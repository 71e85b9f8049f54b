"""Dashboard users: argon2 hashes and roles in the database, audit entries; and the `bastion users` CLI."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from bastion.errors import AuthError, ConfigError


def test_add_authenticate_and_database_row(project: Any) -> None:
    from sqlalchemy import select

    from bastion.store.schema import ui_users
    from bastion.ui.users import UserStore

    store = UserStore(project)
    store.add("alice", "correct horse", role="operator")
    user = store.authenticate("alice", "correct horse")
    assert (user.name, user.role, user.can("viewer"), user.can("operator"), user.can("admin")) == (
        "alice", "operator", True, True, False)
    with project.db.read() as conn:
        row = conn.execute(select(ui_users).where(ui_users.c.name == "alice")).mappings().one()
    assert row["pw_hash"].startswith("$argon2id$") and "correct horse" not in str(dict(row))
    assert not (Path(project.home) / "ui" / "users.json").exists()
    entry = project.audit.entries(action="ui.user.add", limit=1)[0]
    pw = "sha256:" + __import__("hashlib").sha256(row["pw_hash"].encode()).hexdigest()  # the chain names the hash
    assert entry.subject == "user:alice" and entry.details == {"role": "operator", "replaced": False, "pw": pw}


def test_legacy_user_file_is_imported_once(project: Any) -> None:
    from argon2 import PasswordHasher

    from bastion.ui.users import UserStore

    path = Path(project.home) / "ui" / "users.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"schema_version": 1, "users": {"dora": {
        "role": "viewer", "hash": PasswordHasher().hash("dora-password"), "created_at": "2026-01-01T00:00:00Z",
        "created_by": "ops"}}}))
    path.chmod(0o600)
    store = UserStore(project)
    assert store.authenticate("dora", "dora-password").role == "viewer"
    assert not path.exists() and stat.S_IMODE(path.with_name("users.json.imported").stat().st_mode) == 0o600
    assert project.audit.entries(action="ui.user.import", limit=1)[0].details["users"] == ["dora"]
    assert [u.name for u in UserStore(project).list()] == ["dora"]


@pytest.mark.parametrize(
    ("name", "password", "role", "message"),
    [
        ("bob", "long-enough", "root", "role must be one of"),
        ("bob", "short", "viewer", "at least 8"),
        ("../bob", "long-enough", "viewer", "user name"),
        ("", "long-enough", "viewer", "user name"),
    ],
)
def test_add_rejects_bad_input(project: Any, name: str, password: str, role: str, message: str) -> None:
    from bastion.ui.users import UserStore

    with pytest.raises(ConfigError, match=message):
        UserStore(project).add(name, password, role=role)


def test_duplicate_needs_replace_and_remove(project: Any) -> None:
    from bastion.ui.users import UserStore

    store = UserStore(project)
    store.add("carol", "password-1", role="viewer")
    with pytest.raises(ConfigError, match="exists already"):
        store.add("carol", "password-2", role="admin")
    store.add("carol", "password-2", role="admin", replace=True)
    assert store.authenticate("carol", "password-2").role == "admin"
    with pytest.raises(AuthError):
        store.authenticate("carol", "password-1")
    store.remove("carol")
    assert store.get("carol") is None
    with pytest.raises(AuthError, match="Unknown user or wrong password"):
        store.authenticate("carol", "password-2")


def test_corrupt_user_file_fails_closed(project: Any) -> None:
    from bastion.ui.users import UserStore

    path = Path(project.home) / "ui" / "users.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"users": []}')
    with pytest.raises(ConfigError, match="schema_version 1"):
        UserStore(project).authenticate("x", "y")


def test_users_cli(project: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import bastion.cli.users as users_cli

    runner = CliRunner()
    monkeypatch.setenv("BASTION_UI_PASSWORD", "cli-password")
    r = runner.invoke(users_cli.app, ["add", "dave", "--role", "operator", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["role"] == "operator"
    r = runner.invoke(users_cli.app, ["list", "--json"])
    assert [u["name"] for u in json.loads(r.output)] == ["dave"]
    assert "hash" not in r.output
    r = runner.invoke(users_cli.app, ["add", "dave", "--role", "boss"])
    assert r.exit_code != 0 and isinstance(r.exception, ConfigError)


def test_ui_command_refuses_without_users(project: Any) -> None:
    import typer
    from typer.testing import CliRunner

    from bastion.cli.ui import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps `ui` a named subcommand
        pass

    r = CliRunner().invoke(app, ["ui", "--port", "0"])
    assert isinstance(r.exception, ConfigError)
    assert "no users yet" in str(r.exception)
