"""Model configuration files (JSON): what loaders execute because of them, and credentials stored in them.

``config.json``-style files are data, but Hugging Face ``transformers`` imports the Python modules a config
names in ``auto_map`` (``trust_remote_code``), and a config that carries an API key leaks it to everyone the
model is shared with. Nothing else in a config is judged (free text runs nowhere).
"""

from __future__ import annotations

import json
import re

from bastion.scan.interface import Severity

TYPE_CHECKING = False  # typing stays off the scan's start-up path; annotations are strings
if TYPE_CHECKING:
    from typing import Any

    from bastion.scan.interface import ScanContext

__all__ = ["scan_config_text"]

# Field names that hold a credential (as secret scanners' keyword detectors name them), matched on the whole
# normalised name: "api_key" and "openai_api_key" are, "exfil_key" or "cache_key" are not.
_CREDENTIAL = re.compile(r"(?:[a-z0-9]+_)*(?:api_?key|secret(?:_key)?|access_?key|private_key|password|passwd|"
                         r"auth_?token|access_token|bearer_token|client_secret)")
_REMOTE_CODE = ("auto_map", "custom_pipelines")


def _walk(value: Any, path: str, out: list[tuple[str, str, Any]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            out.append((f"{path}.{k}" if path else str(k), str(k), v))
            _walk(v, f"{path}.{k}" if path else str(k), out)
    elif isinstance(value, list):
        for i, v in enumerate(value[:1000]):
            _walk(v, f"{path}[{i}]", out)


def scan_config_text(text: str, ctx: ScanContext) -> bool:
    """Judge a JSON object document; returns True when ``text`` was one."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return False
    if not isinstance(doc, dict):
        return False
    items: list[tuple[str, str, Any]] = []
    _walk(doc, "", items)
    for where, key, value in items:
        name = key.strip().lower().replace("-", "_")
        if name in _REMOTE_CODE and value:
            ctx.add("config.remote-code", Severity.HIGH, where,
                    f"The config names Python classes to import from the model repository ({where}); transformers "
                    "runs that code when the model is loaded with trust_remote_code=True.",
                    "Review the referenced modules, or use a model whose architecture ships with transformers.")
        elif _CREDENTIAL.fullmatch(name) and isinstance(value, str) and len(value.strip()) >= 8:
            ctx.add("config.credential", Severity.MEDIUM, where,
                    f"The config stores a credential in {where!r} ({len(value)} characters, not shown); everyone "
                    "the model is shared with can read it.",
                    "Remove the credential from the artifact, rotate it, and pass it at run time instead.")
    return True
