"""What a model was made with: the code (git commit, dirty flag) and the Python environment."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["capture_code", "capture_environment"]

_env_cache: dict[str, Any] | None = None
_code_cache: dict[str, tuple[float, dict[str, Any]]] = {}
_CODE_TTL = 5.0  # seconds: registering in a loop should not fork git every time


def capture_environment() -> dict[str, Any]:
    """Python version, platform and every installed distribution with its version (cached per process)."""
    global _env_cache
    if _env_cache is None:
        packages: dict[str, str] = {}
        for dist in importlib.metadata.distributions():
            name = dist.metadata["Name"] if dist.metadata else None
            if name:
                packages[str(name).lower()] = str(dist.version)
        _env_cache = {
            "schema_version": 1,
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "executable_prefix": sys.prefix,
            "packages": dict(sorted(packages.items())),
        }
    return _env_cache


def capture_code(cwd: str | Path | None = None) -> dict[str, Any]:
    """Git commit and dirty flag of the working tree at ``cwd``; empty when not in a git repo."""
    key = str(Path(cwd or Path.cwd()).resolve())
    hit = _code_cache.get(key)
    now = time.monotonic()
    if hit and now - hit[0] < _CODE_TTL:
        return hit[1]
    info: dict[str, Any] = {}
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=key, capture_output=True, text=True, timeout=5, check=False
        )
        if commit.returncode == 0:
            status = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=key,
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            info = {"git_commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        info = {}
    _code_cache[key] = (now, info)
    return info
