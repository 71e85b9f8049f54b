"""Bastion: secure MLOps from raw data to monitored production.

The module-level functions act on the project found from the current directory (or
``BASTION_PROJECT``); use :func:`open_project` for an explicit one.
"""

from __future__ import annotations

from bastion.errors import BastionError

# `import bastion` is on the path of every `bastion model scan` and `bastion.scan(...)`, which are
# timed whole-process against peers: typing is for the type checker only (annotations are strings).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

__all__ = [
    "BastionError",
    "__version__",
    "get_dataset",
    "get_model",
    "init_project",
    "load_model",
    "log_model",
    "open_project",
    "promote",
    "protect",
    "register_dataset",
    "rollback",
    "scan",
    "scan_data",
]

_current: Any = None


def _project() -> Any:
    global _current
    if _current is None:
        from bastion.project import open_project as _open

        _current = _open()
    return _current


def open_project(path: Any = None) -> Any:
    """Open (and make current) the project at ``path``; see :class:`bastion.project.Project`."""
    global _current
    from bastion.project import open_project as _open

    _current = _open(path)
    return _current


def init_project(path: Any = None, **kwargs: Any) -> Any:
    """Create a project at ``path`` (``bastion.toml`` + ``.bastion/``) and make it current."""
    global _current
    from bastion.project import init_project as _init

    _current = _init(path, **kwargs)
    return _current


def register_dataset(source: Any, *, name: str, **kwargs: Any) -> Any:
    """Register a DataFrame, file or folder as a new dataset version."""
    return _project().register_dataset(source, name=name, **kwargs)


def log_model(model: Any, *, name: str, **kwargs: Any) -> Any:
    """Register an estimator or model file as a new model version (scanned first)."""
    return _project().log_model(model, name=name, **kwargs)


def get_dataset(ref: str) -> Any:
    return _project().get_dataset(ref)


def get_model(ref: str) -> Any:
    return _project().get_model(ref)


def load_model(ref: str, *, trusted: list[str] | None = None) -> Any:
    """Load ``NAME:VERSION`` or ``NAME@ALIAS`` without running code it carries."""
    return _project().load_model(ref, trusted=trusted)


def promote(ref: str, *, alias: str, force_reason: str | None = None) -> Any:
    return _project().promote(ref, alias=alias, force_reason=force_reason)


def rollback(name: str, *, alias: str, reason: str = "") -> Any:
    return _project().rollback(name, alias=alias, reason=reason)


def scan(path: Any, **kwargs: Any) -> Any:
    """Scan a model artifact (file or folder) without loading it; returns a ScanReport."""
    from bastion.scan import scan_path

    return scan_path(path, **kwargs)


def scan_data(source: Any, **kwargs: Any) -> Any:
    """Find PII in a DataFrame or a data file/folder; returns a TableScanReport."""
    from bastion.data.pii import scan_table

    return scan_table(source, **kwargs)


def protect(df: Any, policy: Any = None, **kwargs: Any) -> Any:
    """Apply protection operators (redact, tokenize, encrypt, …) to a DataFrame."""
    from bastion.data import protect as _protect

    return _protect(df, policy, **kwargs)
