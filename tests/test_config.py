from __future__ import annotations

from pathlib import Path

import pytest

from bastion.config import load_settings
from bastion.errors import ConfigError


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(tmp_path, env={})
    assert s.db_url == f"sqlite:///{tmp_path.resolve() / '.bastion' / 'bastion.db'}"
    assert s.artifacts == str(tmp_path.resolve() / ".bastion" / "artifacts")
    assert s.scan_on_register is True
    assert s.actor


def test_precedence_toml_then_env_then_flags(tmp_path: Path) -> None:
    (tmp_path / "bastion.toml").write_text('[bastion]\nuser = "from-toml"\nengine = "dask"\n')
    assert load_settings(tmp_path, env={}).user == "from-toml"
    env = {"BASTION_USER": "from-env"}
    assert load_settings(tmp_path, env=env).user == "from-env"
    assert load_settings(tmp_path, env=env, overrides={"user": "from-flag"}).user == "from-flag"
    assert load_settings(tmp_path, env={}).engine == "dask"


@pytest.mark.parametrize(
    "toml,env,match",
    [
        ("[bastion]\nhoem = 'x'\n", {}, "unknown setting 'hoem'"),
        ("[bastion\n", {}, "not valid TOML"),
        ("[bastion]\nscan_on_register = 'maybe'\n", {}, "must be a boolean"),
        ("", {"BASTION_SCAN_ON_REGISTER": "yes please"}, "BASTION_SCAN_ON_REGISTER"),
        ("[bastion]\nuser = 3\n", {}, "must be a string"),
        ("", {"BASTION_ENGINE": "spark"}, "'local' or 'dask'"),
    ],
)
def test_bad_settings_are_errors_not_defaults(tmp_path: Path, toml: str, env: dict[str, str], match: str) -> None:
    (tmp_path / "bastion.toml").write_text(toml)
    with pytest.raises(ConfigError, match=match):
        load_settings(tmp_path, env=env)


@pytest.mark.parametrize("raw,value", [("1", True), ("true", True), ("OFF", False), ("no", False)])
def test_strict_booleans(tmp_path: Path, raw: str, value: bool) -> None:
    assert load_settings(tmp_path, env={"BASTION_SCAN_ON_REGISTER": raw}).scan_on_register is value


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    from bastion.errors import StoreError
    from bastion.project import init_project

    with pytest.raises(StoreError, match="Cannot connect"):
        init_project(tmp_path, database_url="postgresql://nobody@127.0.0.1:1/none")
