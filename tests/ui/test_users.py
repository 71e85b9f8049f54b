"""Dashboard users: argon2 hashes, roles, atomic 0600 file, audit entries; and the `bastion users` CLI."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from bastion.errors import AuthError, ConfigError


def test_add_authenticate_and_file(project: Any) -> None:
    from bastion.ui.users import UserStore

    store = UserStore(project)
    store.add("alice", "correct horse", role="operator")
    user = store.authenticate("alice", "correct horse")
    assert (user.name, user.role, user.can("viewer"), user.can("operator"), user.can("admin")) == (
        "alice", "operator", True, True, False)
    path = Path(project.home) / "ui" / "users.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == 1
    assert doc["users"]["alice"]["hash"].startswith("$argon2id$")
    assert "correct horse" not in path.read_text()
    entry = project.audit.entries(action="ui.user.add", limit=1)[0]
    assert entry.subject == "user:alice" and entry.details == {"role": "operator", "replaced": False}
    assert not list(path.parent.glob("*.tmp"))


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


def test_secret_file_is_private(project: Any) -> None:
    from bastion.ui._session import load_secret

    secret = load_secret(Path(project.home))
    path = Path(project.home) / "ui" / "secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret(Path(project.home)) == secret
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_secret(Path(project.home))


def test_session_codec_rejects_tampering_and_expiry() -> None:
    from bastion.ui._session import SessionCodec

    codec = SessionCodec(b"k" * 32, max_age=60)
    cookie, sess = codec.new("alice", "viewer")
    assert codec.decode(cookie) == sess
    assert SessionCodec(b"x" * 32).decode(cookie) is None
    body, sig = cookie.split(".")
    assert codec.decode(body + "." + sig[:-2] + "AA") is None
    assert codec.decode(None) is None and codec.decode("garbage") is None
    expired = SessionCodec(b"k" * 32, max_age=-1)
    old, _ = expired.new("alice", "viewer")
    assert codec.decode(old) is None


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
