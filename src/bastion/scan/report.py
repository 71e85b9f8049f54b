"""Render a `ScanReport`: rich tables for terminals, plain text, JSON (``to_dict``) and SARIF 2.1.0.

The rule catalogue here gives every built-in rule id a short description for SARIF viewers.
"""

from __future__ import annotations

import json
from pathlib import PurePath
from urllib.parse import quote

from bastion.scan.interface import Severity

# rich is imported by `render` only: JSON, SARIF and plain text need none of it (start-up time)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from rich.console import Console

    from bastion.scan.interface import Finding, ScanReport

__all__ = ["RULES", "SARIF_SCHEMA", "render", "to_json", "to_sarif", "to_text"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_INFO_URI = "https://github.com/bastion-mlops/bastion/blob/main/docs/scanner.md"

#: Built-in rule ids and what they mean.
RULES: dict[str, str] = {
    "pickle.dangerous-global": "Pickle references a callable that gives code execution or system access",
    "pickle.unknown-callable": "Pickle calls a callable that is not on the allowlist",
    "format.template-injection": "A Jinja template in a text file (tokenizer config, .jinja) escapes the sandbox",
    "pickle.nested-pickle": "A pickle carried as data (bytes, base64, hex) imports globals off the allowlist",
    "pickle.call-gadget": "A global or built callable reaches an argument of an allowlisted callable",
    "pickle.constructor-call": "An allowlisted class is called with arguments (its constructor runs)",
    "pickle.unsafe-parameter": "Object state makes the model act on the host when it predicts (input='filename')",
    "pickle.argument-signature": "A torch rebuild helper is called with a value of the wrong kind for its position",
    "pickle.implicit-call": "BUILD/APPEND/SETITEM would call an attribute planted on the object",
    "pickle.frame-mismatch": "FRAME boundaries that pickle.load and joblib.load read differently",
    "pickle.unknown-global": "Pickle references a global that is not on the allowlist",
    "pickle.noteworthy-global": "Pickle uses an allowed global worth a reviewer's glance",
    "pickle.unresolved-global": "Pickle imports a name built from non-constant values",
    "pickle.computed-call": "Pickle calls a value that is not a named global",
    "pickle.mutate-global": "Pickle modifies an imported module or class",
    "pickle.extension-code": "Pickle uses the copyreg extension registry",
    "pickle.persistent-id": "Pickle uses persistent ids outside a PyTorch archive",
    "pickle.out-of-band-buffer": "Pickle expects out-of-band buffers",
    "pickle.malformed": "Pickle cannot be parsed completely",
    "pickle.trailing-data": "Data follows the pickle's STOP opcode",
    "pickle.multiple-pickles": "File holds more than one pickle",
    "pickle.joblib-array-opcodes": "joblib array bytes parse as pickle opcodes (loader differential)",
    "limit.opcodes": "Opcode limit reached; the rest was not analysed",
    "limit.expansion": "Shared containers (DUP/memo) make the object graph exponentially large (billion laughs)",
    "limit.allocation": "An allowlisted call is given an attacker-sized operand (memory or CPU exhaustion)",
    "limit.time": "Per-file time limit reached; the rest was not analysed",
    "limit.size": "Expanded-size limit reached (decompression bomb?)",
    "limit.ratio": "Compression-ratio limit reached (decompression bomb?)",
    "limit.depth": "Container nesting limit reached",
    "limit.members": "Archive member-count limit reached",
    "limit.pickles": "Too many consecutive pickles",
    "archive.offset-mismatch": "Zip offsets that readers resolve differently (a second archive in front)",
    "archive.path-traversal": "Archive member escapes the extraction folder (zip-slip/tar-slip)",
    "archive.link": "Archive member is a link",
    "archive.special-file": "Archive member is a device or FIFO",
    "archive.duplicate-member": "Archive holds two members with one name",
    "archive.colliding-members": "Archive members with different names extract to one file",
    "archive.bad-crc": "Archive member fails its CRC check",
    "archive.header-mismatch": "Zip local and central headers disagree",
    "archive.overlapping-members": "Zip members overlap",
    "archive.prepended-data": "Data precedes the first zip member (polyglot)",
    "archive.polyglot": "File of one format also holds a zip archive",
    "archive.encrypted": "Archive member is encrypted and cannot be checked",
    "archive.corrupt": "Archive or compressed stream is damaged",
    "archive.unsupported": "Archive type needs an optional package to be inspected",
    "torch.torchscript": "TorchScript archive carries program code",
    "torch.extra-members": "PyTorch archive has members outside its root folder",
    "tensorflow.python-op": "A TensorFlow graph calls a Python function of the process that runs it",
    "config.remote-code": "A model config names repository code that transformers imports (trust_remote_code)",
    "config.credential": "A model config stores a credential",
    "torch.legacy-layout": "A legacy torch tar member does not follow the layout torch.load reads",
    "torch.legacy-trailing-data": "Bytes follow the last record torch.load reads from a legacy tar member",
    "numpy.object-array": "NumPy array of Python objects (needs allow_pickle)",
    "numpy.bad-header": "NumPy header is invalid",
    "numpy.truncated": "NumPy data is shorter than its header says",
    "numpy.trailing-data": "Data follows the NumPy array",
    "keras.lambda": "Keras Lambda layer (serialized Python bytecode)",
    "keras.dangerous-object": "Keras config names a dangerous function",
    "keras.custom-object": "Keras config needs custom code from outside Keras",
    "keras.bad-config": "Keras config is not valid JSON",
    "onnx.custom-domain": "ONNX graph uses custom-operator domains",
    "onnx.external-data-escape": "ONNX external data path leaves the model folder",
    "onnx.external-data": "ONNX tensor data lives in a separate file",
    "onnx.malformed": "ONNX protobuf cannot be parsed",
    "safetensors.invalid": "safetensors header is invalid",
    "safetensors.gap": "safetensors data has bytes that belong to no tensor",
    "gguf.malformed": "GGUF header is invalid",
    "gguf.legacy": "Pre-GGUF llama.cpp container",
    "gguf.chat-template-injection": "GGUF chat template contains a template-injection payload",
    "gguf.chat-template": "GGUF model carries a Jinja chat template",
    "format.corrupt": "Content is damaged",
    "fs.symlink": "Symlink in the scanned folder",
    "fs.special-file": "Device, FIFO or socket in the scanned folder",
    "scan.resource": "Content exhausts the analyser",
    "scan.internal-error": "A scanner failed; the file is unverified",
}

_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# GitHub code scanning reads "security-severity" (0-10) to rank alerts.
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.8",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}
_STYLE = {
    Severity.CRITICAL: "bold red",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


def _uri(path: str) -> str:
    p = PurePath(path)
    if p.is_absolute():
        return "file://" + quote(p.as_posix())
    return quote(p.as_posix())


def _location(f: Finding) -> str:
    where = f.file
    if f.inner_path:
        where += f" ! {f.inner_path}"
    if f.offset is not None:
        where += f" @{f.offset}"
    return where


def to_sarif(report: ScanReport) -> dict[str, Any]:
    """SARIF 2.1.0 log: one run, one rule per rule id used, one result per finding."""
    worst: dict[str, Severity] = {}
    for f in report.findings:
        worst[f.rule_id] = max(worst.get(f.rule_id, f.severity), f.severity)
    rule_ids = sorted(worst)
    index = {rid: i for i, rid in enumerate(rule_ids)}
    rules = [
        {
            "id": rid,
            "name": rid.replace(".", "/"),
            "shortDescription": {"text": RULES.get(rid, rid)},
            "helpUri": _INFO_URI,
            "defaultConfiguration": {"level": _LEVEL[worst[rid]]},
            "properties": {"security-severity": _SECURITY_SEVERITY[worst[rid]], "tags": ["security", "ml-model"]},
        }
        for rid in rule_ids
    ]
    artifacts: list[dict[str, Any]] = []
    art_index: dict[str, int] = {}
    for sf in report.files:
        art_index[sf.path] = len(artifacts)
        entry: dict[str, Any] = {"location": {"uri": _uri(sf.path)}, "length": sf.size}
        if sf.sha256:
            entry["hashes"] = {"sha-256": sf.sha256}
        artifacts.append(entry)
    results = []
    for f in report.findings:
        physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(f.file)}}
        if f.file in art_index:
            physical["artifactLocation"]["index"] = art_index[f.file]
        if f.offset is not None and f.inner_path is None:
            physical["region"] = {"byteOffset": f.offset, "byteLength": 1}
        location: dict[str, Any] = {"physicalLocation": physical}
        if f.inner_path:
            location["logicalLocations"] = [{"fullyQualifiedName": f.inner_path, "kind": "member"}]
        text = f.message if not f.inner_path else f"{f.inner_path}: {f.message}"
        results.append(
            {
                "ruleId": f.rule_id,
                "ruleIndex": index[f.rule_id],
                "level": _LEVEL[f.severity],
                "message": {"text": text},
                "locations": [location],
                "properties": {
                    "severity": f.severity.label,
                    "construct": f.construct,
                    "innerPath": f.inner_path,
                    "offset": f.offset,
                    "remediation": f.remediation,
                },
            }
        )
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "bastion-scan",
                        "version": report.scanner_version or "1",
                        "informationUri": _INFO_URI,
                        "rules": rules,
                    }
                },
                "artifacts": artifacts,
                "results": results,
                "invocations": [
                    {
                        "executionSuccessful": not report.errors,
                        "toolExecutionNotifications": [
                            {"level": "error", "message": {"text": f"{e.path}: {e.message}"}} for e in report.errors
                        ],
                    }
                ],
            }
        ],
    }


def to_json(report: ScanReport) -> str:
    """The JSON document (``schema_version`` 1) as text."""
    return json.dumps(report.to_dict(), indent=2, sort_keys=True)


def render(report: ScanReport, console: Console) -> None:
    """Print the report as rich tables to ``console`` (for terminals; see `to_text` for plain text).

    Everything taken from the artifact (names, messages, paths) is printed as literal text, never as
    rich markup: a pickle may name a global ``[/]`` or ``[link=...]``.
    """
    from rich.table import Table
    from rich.text import Text

    files = Table(title=f"Scanned {len(report.files)} file(s) in {report.duration_s:.2f} s", title_justify="left")
    files.add_column("file")
    files.add_column("format")
    files.add_column("bytes", justify="right")
    for sf in report.files:
        files.add_row(Text(sf.path), Text(sf.format), str(sf.size))
    console.print(files)
    if report.findings:
        ordered = _ordered(report)
        table = Table(title="Findings", title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("severity", no_wrap=True)
        table.add_column("rule", no_wrap=True)
        table.add_column("location", overflow="fold")
        table.add_column("construct", overflow="fold")
        for i, f in enumerate(ordered, 1):
            table.add_row(str(i), Text(f.severity.label, style=_STYLE[f.severity]), Text(f.rule_id),
                          Text(_location(f)), Text(f.construct))
        console.print(table)
        for i, f in enumerate(ordered, 1):
            console.print(Text.assemble((f"{i}.", "bold"), f" {f.message}\n   ", ("Fix:", "dim"), f" {f.remediation}"))
    for err in report.errors:
        console.print(Text.assemble(("unreadable", "red"), f" {err.path}: {err.message}"))
    console.print(f"Result: {_verdict(report)}", highlight=False)


def _ordered(report: ScanReport) -> list[Finding]:
    return sorted(report.findings, key=lambda x: (-x.severity, x.file, x.inner_path or ""))


def _verdict(report: ScanReport) -> str:
    worst = report.max_severity
    return "no findings" if worst is None else f"{len(report.findings)} finding(s), worst: {worst.label}"


def _columns(rows: list[tuple[str, ...]], right: tuple[int, ...] = ()) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.rjust(w) if i in right else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


def to_text(report: ScanReport) -> str:
    """Plain-text rendering (no colour, no table borders), for files, pipes and logs.

    The same facts as `render`: the files with their formats, then each finding with its severity,
    rule, location, construct, message and fix, then a one-line result.
    """
    lines = [f"Scanned {len(report.files)} file(s) in {report.duration_s:.2f} s"]
    lines += _columns([("file", "format", "bytes"), *((sf.path, sf.format, str(sf.size)) for sf in report.files)],
                      right=(2,))
    if report.findings:
        ordered = _ordered(report)
        lines.append("Findings")
        lines += _columns([("#", "severity", "rule", "location", "construct"),
                           *((str(i), f.severity.label, f.rule_id, _location(f), f.construct)
                             for i, f in enumerate(ordered, 1))], right=(0,))
        for i, f in enumerate(ordered, 1):
            lines += [f"{i}. {f.message}", f"   Fix: {f.remediation}"]
    lines += [f"unreadable {err.path}: {err.message}" for err in report.errors]
    lines.append(f"Result: {_verdict(report)}")
    return "\n".join(lines) + "\n"
