"""Project settings: packaged defaults, then ``bastion.toml``, then ``BASTION_*`` variables, then flags.

Parsing is strict: an unknown key or a malformed value is a ``ConfigError``, never a silent default.
"""

from __future__ import annotations

import getpass
import json
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bastion.errors import ConfigError

__all__ = ["CONFIG_FILE", "HOME_DIR", "STORAGE_OPTION_KEYS", "Settings", "find_project_root", "load_settings"]

CONFIG_FILE = "bastion.toml"
HOME_DIR = ".bastion"

# key -> (type, env var)
_KEYS: dict[str, tuple[type, str]] = {
    "home": (str, "BASTION_HOME"),
    "database_url": (str, "BASTION_DATABASE_URL"),
    "artifacts_url": (str, "BASTION_ARTIFACTS_URL"),
    "user": (str, "BASTION_USER"),
    "scan_on_register": (bool, "BASTION_SCAN_ON_REGISTER"),
    "engine": (str, "BASTION_ENGINE"),
    "scheduler": (str, "BASTION_SCHEDULER"),
    "key_file": (str, "BASTION_KEY_FILE"),
}

# Options of the object store under ``[bastion.storage_options]`` (or the JSON object in
# ``BASTION_STORAGE_OPTIONS``): where the S3-compatible endpoint is, never who we are. Credentials come
# from the usual environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance roles).
STORAGE_OPTION_KEYS: dict[str, type] = {
    "endpoint_url": str,
    "region": str,
    "profile": str,
    "connect_timeout": float,
    "read_timeout": float,
    "max_attempts": int,
}
_SECRET_OPTION_WORDS = ("key", "secret", "token", "password")


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one Bastion project.

    Relative paths are resolved against ``root`` (the folder holding ``bastion.toml``).
    """

    root: Path
    home: str = HOME_DIR
    database_url: str = ""
    artifacts_url: str = ""
    user: str = ""
    scan_on_register: bool = True
    engine: str = "local"
    scheduler: str = ""
    key_file: str = ""
    storage_options: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def home_path(self) -> Path:
        p = Path(self.home)
        return p if p.is_absolute() else self.root / p

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home_path / 'bastion.db'}"

    @property
    def artifacts(self) -> str:
        if self.artifacts_url:
            if "://" in self.artifacts_url:
                return self.artifacts_url
            p = Path(self.artifacts_url)
            return str(p if p.is_absolute() else self.root / p)
        return str(self.home_path / "artifacts")

    @property
    def actor(self) -> str:
        return self.user or _os_user()

    @property
    def key_path(self) -> Path:
        if self.key_file:
            p = Path(self.key_file)
            return p if p.is_absolute() else self.root / p
        return self.home_path / "keys" / "master.key"


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name on this system (containers without passwd entry)
        return f"uid:{os.getuid()}"


def _parse(key: str, kind: type, raw: Any, source: str) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in {"1", "true", "yes", "on"}:
            return True
        if isinstance(raw, str) and raw.strip().lower() in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"Setting '{key}' from {source} must be a boolean (true/false); got {raw!r}.")
    if not isinstance(raw, str):
        raise ConfigError(f"Setting '{key}' from {source} must be a string; got {type(raw).__name__} {raw!r}.")
    return raw


def _parse_storage_options(raw: Any, source: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"Setting 'storage_options' from {source} must be a table (or a JSON object); got {raw!r}.")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in STORAGE_OPTION_KEYS:
            if any(w in str(key).lower() for w in _SECRET_OPTION_WORDS):
                raise ConfigError(
                    f"storage_options from {source}: '{key}' looks like a credential; credentials never go in "
                    "settings. Use the usual environment instead (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or "
                    "AWS_PROFILE)."
                )
            known = ", ".join(sorted(STORAGE_OPTION_KEYS))
            raise ConfigError(f"storage_options from {source}: unknown option '{key}'. Known options: {known}.")
        kind = STORAGE_OPTION_KEYS[key]
        if kind is str:
            if not isinstance(value, str) or not value:
                raise ConfigError(f"storage_options.{key} from {source} must be a non-empty string; got {value!r}.")
            if key == "endpoint_url" and not value.startswith(("http://", "https://")):
                raise ConfigError(
                    f"storage_options.endpoint_url from {source} must start with http:// or https://; got {value!r}."
                )
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
                raise ConfigError(f"storage_options.{key} from {source} must be seconds in (0, 3600]; got {value!r}.")
            value = float(value)
        elif isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 20:
            raise ConfigError(f"storage_options.{key} from {source} must be an integer in [1, 20]; got {value!r}.")
        out[str(key)] = value
    return out


def find_project_root(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` holding ``bastion.toml`` or ``.bastion/``."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / CONFIG_FILE).is_file() or (d / HOME_DIR).is_dir():
            return d
    return None


def load_settings(
    root: str | Path | None = None,
    *,
    env: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Resolve settings for the project at ``root`` (default: nearest project above the cwd, else cwd)."""
    environ = os.environ if env is None else env
    if root is None:
        env_root = environ.get("BASTION_PROJECT")
        root_path = Path(env_root) if env_root else (find_project_root() or Path.cwd())
    else:
        root_path = Path(root)
    root_path = root_path.resolve()
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    cfg = root_path / CONFIG_FILE
    if cfg.is_file():
        try:
            data = tomllib.loads(cfg.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{cfg} is not valid TOML: {e}. Fix the file or delete it to use defaults.") from e
        section = data.get("bastion", data)
        if not isinstance(section, dict):
            raise ConfigError(f"{cfg}: the [bastion] section must be a table.")
        for key, raw in section.items():
            if key == "storage_options":
                values[key] = _parse_storage_options(raw, str(cfg))
                sources[key] = str(cfg)
                continue
            if key not in _KEYS:
                known = ", ".join(sorted([*_KEYS, "storage_options"]))
                raise ConfigError(f"{cfg}: unknown setting '{key}'. Known settings: {known}.")
            values[key] = _parse(key, _KEYS[key][0], raw, str(cfg))
            sources[key] = str(cfg)

    for key, (kind, var) in _KEYS.items():
        if var in environ and environ[var] != "":
            values[key] = _parse(key, kind, environ[var], f"environment variable {var}")
            sources[key] = var

    raw_opts = environ.get("BASTION_STORAGE_OPTIONS", "")
    if raw_opts:
        try:
            parsed_opts = json.loads(raw_opts)
        except ValueError as e:
            raise ConfigError(f"BASTION_STORAGE_OPTIONS must be a JSON object: {e}.") from e
        values["storage_options"] = _parse_storage_options(parsed_opts, "environment variable BASTION_STORAGE_OPTIONS")
        sources["storage_options"] = "BASTION_STORAGE_OPTIONS"

    for key, raw in (overrides or {}).items():
        if raw is None:
            continue
        if key == "storage_options":
            values[key] = _parse_storage_options(raw, "command line")
            sources[key] = "command line"
            continue
        if key not in _KEYS:
            raise ConfigError(f"Unknown setting '{key}'.")
        values[key] = _parse(key, _KEYS[key][0], raw, "command line")
        sources[key] = "command line"

    if values.get("engine", "local") not in {"local", "dask"}:
        raise ConfigError(f"Setting 'engine' must be 'local' or 'dask'; got {values['engine']!r}.")
    settings = Settings(root=root_path, sources=sources)
    return replace(settings, **values)
