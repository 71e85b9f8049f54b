from __future__ import annotations

import json
import stat

from typer.testing import CliRunner

from bastion.cli.main import app
from bastion.errors import KeyManagementError

runner = CliRunner()


def test_init_rotate_list(project, monkeypatch):
    monkeypatch.setenv("BASTION_KEY_PASSPHRASE", "pw")
    r = runner.invoke(app, ["keys", "init", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    path = project.settings.key_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and doc["protected"] is True
    r = runner.invoke(app, ["keys", "init"])
    assert isinstance(r.exception, KeyManagementError)
    from bastion.crypto.keys import FileKeyProvider, Keyring, keyring_path

    Keyring(keyring_path(path), FileKeyProvider(path, "pw")).get_or_create("encrypt", "d")
    r = runner.invoke(app, ["keys", "data", "rotate", "--json"])
    assert r.exit_code == 0, r.output
    rot = json.loads(r.stdout)
    assert rot["data_keys_rewrapped"] == 1 and rot["old_master_key_id"] == doc["master_key_id"]
    r = runner.invoke(app, ["keys", "data", "list", "--json"])
    assert json.loads(r.stdout)[0]["master_key_ids"] == [rot["new_master_key_id"]]
    actions = [e.action for e in project.audit.entries()]
    assert "keys.init" in actions and "keys.data.rotate" in actions


def test_no_passphrase_is_explicit_and_audited(project):
    r = runner.invoke(app, ["keys", "init", "--no-passphrase"])
    assert r.exit_code == 0, r.output
    assert "development mode" in r.output
    assert json.loads(project.settings.key_path.read_text())["protected"] is False
    init = [e for e in project.audit.entries() if e.action == "keys.init"]
    assert init[0].details["unsafe_no_passphrase"] is True
