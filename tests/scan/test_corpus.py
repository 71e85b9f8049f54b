"""The scanner against the corpus: every malicious sample flagged, no benign one, nothing executed.

The canary test proves both halves: scanning never creates the canary, while the normal loaders
(in a throwaway subprocess) do, so the corpus really is malicious.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bastion.scan import ScanReport, Severity, scan_path

CORPUS_DIR = Path(__file__).parent / "corpus"


def _corpus_module(name: str) -> Any:
    # same key as conftest.load_corpus_module, so both see one module object
    key = f"bastion_scan_corpus_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, CORPUS_DIR / f"{name}.py")
        assert spec is not None and spec.loader is not None
        sys.modules[key] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[key])
    return sys.modules[key]


generate = _corpus_module("generate")
Corpus = generate.Corpus

# Formats and techniques issue 4 asks the corpus to cover; a test keeps the corpus honest.
REQUIRED_MALICIOUS_FORMATS = {
    "pickle",
    "joblib",
    "torch",
    "torch-legacy",
    "torch-tar",
    "numpy",
    "keras",
    "keras-h5",
    "onnx",
    "safetensors",
    "zip",
    "tar",
    "7z",
    "gzip",
    "bz2",
    "xz",
    "gguf",
}
REQUIRED_TECHNIQUE_WORDS = [
    "protocol 0",
    "protocol 1",
    "protocol 2",
    "protocol 3",
    "protocol 4",
    "protocol 5",
    "GLOBAL",
    "STACK_GLOBAL",
    "MEMOIZE",
    "INST",
    "OBJ",
    "NEWOBJ ",
    "NEWOBJ_EX",
    "REDUCE",
    "BUILD",
    "EXT1",
    "EXT2",
    "truncated",
    "trailing garbage",
    "unknown opcode",
    "two pickles",
    "duplicate member",
    "colliding member names",
    "zip-slip",
    "tar-slip",
    "decompression bomb",
    "nested sub-model",
    "path traversal",
    "custom-op",
    "overlap",
    ".sav",
    "without an extension",
    ".txt",
    "unusual folder name",
    "compression lz4",
    "chat template",
]
BENIGN_PRELOAD = [
    "pandas",
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.pipeline",
    "sklearn.compose",
    "sklearn.preprocessing",
    "sklearn.svm",
    "sklearn.cluster",
    "sklearn.tree",
    "sklearn.neural_network",
    "sklearn.feature_extraction.text",
    "xgboost",
    "lightgbm",
]
PAYLOAD_MODULES = [
    # modules only a payload would pull in; a scanner that imports what it scans would load them
    "pydoc",
    "timeit",
    "cProfile",
    "bdb",
    "pdb",
    "distutils",
    "pip",
    "runpy",
    "code",
    "asyncio.subprocess",
    "multiprocessing.util",
    "logging.handlers",
    "torch",
    "torch.utils.collect_env",
    "joblib",
    "numpy.testing",
]


@pytest.fixture(scope="module")
def reports(scan_corpus: Corpus) -> dict[str, ScanReport]:
    """One report per sample; the canary must still be absent after all of them."""
    out = {s.name: scan_path(s.path) for s in scan_corpus.samples}
    assert not scan_corpus.canary.exists(), "scanning executed a payload"
    return out


def _describe(report: ScanReport) -> str:
    top = sorted(report.findings, key=lambda f: -f.severity)[:3]
    bits = [f"{f.severity.label}:{f.rule_id}:{f.construct}" for f in top]
    bits += [f"error:{e.message[:80]}" for e in report.errors]
    return "; ".join(bits) or "no findings"


def test_corpus_covers_the_issue(scan_corpus: Corpus) -> None:
    mal, ben = scan_corpus.malicious, scan_corpus.benign
    assert len(mal) >= 40
    assert len(ben) >= 20
    assert len({s.name for s in scan_corpus.samples}) == len(scan_corpus.samples)
    assert REQUIRED_MALICIOUS_FORMATS <= {s.format for s in mal}
    techniques = " | ".join(s.technique for s in mal)
    missing = [w for w in REQUIRED_TECHNIQUE_WORDS if w not in techniques]
    assert missing == []
    assert {"pickle", "joblib", "torch", "numpy", "safetensors", "onnx", "skops", "keras", "gguf"} <= {
        s.format for s in ben
    }
    for s in scan_corpus.samples:
        assert s.path.is_file() and s.path.stat().st_size > 0, s.name
        # each malicious sample is proven one way: a loader spec (a non-empty str) or a structural check
        if s.malicious:
            assert (isinstance(s.loader, str) and s.loader) != (s.structural in generate.STRUCTURAL_CHECKS), s.name
        else:
            assert s.loader is None and s.structural is None, s.name


def test_hand_assembled_pickles_are_deterministic(scan_corpus: Corpus, tmp_path: Path) -> None:
    b = generate._Builder(tmp_path, scan_corpus.canary)
    generate._malicious_pickles(b)
    assert len(b.samples) >= 40
    for s in b.samples:
        twin = scan_corpus.root / "malicious" / s.name
        assert s.path.read_bytes() == twin.read_bytes(), s.name


def test_every_malicious_sample_is_flagged_high(scan_corpus: Corpus, reports: dict[str, ScanReport]) -> None:
    missed = []
    for s in scan_corpus.malicious:
        r = reports[s.name]
        # a finding at HIGH or above, not merely an error: errors alone do not say what is wrong
        if not any(f.severity >= Severity.HIGH for f in r.findings):
            missed.append(f"{s.name} [{s.format}: {s.technique}] -> {_describe(r)}")
    assert missed == [], "malicious samples not flagged at HIGH or above:\n" + "\n".join(missed)


def test_no_benign_sample_is_flagged_above_info(scan_corpus: Corpus, reports: dict[str, ScanReport]) -> None:
    flagged = []
    for s in scan_corpus.benign:
        r = reports[s.name]
        worst = r.max_severity
        if r.errors or (worst is not None and worst > Severity.INFO):
            flagged.append(f"{s.name} [{s.technique}] -> {_describe(r)}")
    assert flagged == [], "benign samples flagged above INFO:\n" + "\n".join(flagged)


def test_findings_point_at_the_scanned_file(scan_corpus: Corpus, reports: dict[str, ScanReport]) -> None:
    for s in scan_corpus.malicious:
        worst = max(reports[s.name].findings, key=lambda f: f.severity)
        assert Path(worst.file).name == s.name or s.name in worst.file, (s.name, worst.file)
        assert worst.message and worst.remediation, s.name


def _run_python(code: str, *args: str, timeout: float = 120) -> Any:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_scanning_the_whole_corpus_never_executes_or_imports_a_payload(scan_corpus: Corpus) -> None:
    # A fresh interpreter, so modules pulled in by other tests do not hide an import by the scanner.
    code = textwrap.dedent("""
        import json, sys
        from pathlib import Path
        from bastion.scan import scan_path
        before = set(sys.modules)
        report = scan_path(Path(sys.argv[1]))
        watched = json.loads(sys.argv[2])
        imported = sorted(m for m in watched if m in sys.modules and m not in before)
        flagged = sorted({Path(f.file).name for f in report.findings if f.severity >= 40})
        print(json.dumps({"files": len(report.files), "imported": imported, "flagged": flagged}))
    """)
    out = _run_python(code, str(scan_corpus.root), json.dumps(PAYLOAD_MODULES))
    assert not scan_corpus.canary.exists(), "scanning the corpus folder executed a payload"
    assert out["imported"] == []
    assert out["files"] >= len(scan_corpus.samples)
    # the folder scan reports the same malicious files as the per-file scans
    assert {s.name for s in scan_corpus.malicious} <= set(out["flagged"])


def test_normal_loaders_do_run_the_payloads(scan_corpus: Corpus) -> None:
    """Prove the corpus is real: each executable sample creates the canary when loaded normally.

    All loads run in one subprocess (one fork per sample, fresh temp cwd) to keep this fast.
    Samples whose harm is not code execution (ONNX external-data traversal and custom-op domains,
    lying safetensors headers, a decompression bomb) are checked structurally instead. Keras
    Lambda samples are loaded the way keras' ``func_load`` does under ``safe_mode=False``
    (base64 + marshal + FunctionType, then called), since Keras itself is not installed here.
    """
    manifest = scan_corpus.root / "manifest.json"
    proc = subprocess.run(
        [sys.executable, str(CORPUS_DIR / "_load.py"), str(manifest), str(scan_corpus.canary)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    executable = [s for s in scan_corpus.malicious if s.loader]
    assert len(executable) >= 40
    assert len(executable) + sum(1 for s in scan_corpus.malicious if s.structural) == len(scan_corpus.malicious)
    not_created = [f"{s.name}: {results.get(s.name)}" for s in executable if not results.get(s.name, {}).get("created")]
    assert not_created == []
    structural = [s for s in scan_corpus.malicious if s.structural]
    assert structural, "the corpus has non-executing samples"
    failing = [s.name for s in structural if not generate.STRUCTURAL_CHECKS[s.structural](s.path)]
    assert failing == []
    assert not scan_corpus.canary.exists()


def test_benign_samples_do_not_touch_the_canary_when_loaded(scan_corpus: Corpus, tmp_path: Path) -> None:
    # The benign half must be real models that load; a benign sample that fails to load would make
    # "no false positive" meaningless. Keras/ONNX/safetensors have no Python loader here: skip those.
    # GGUF: its metadata is read and its chat template rendered, as llama-cpp-python does.
    loaders = {
        "pickle": "pickle",
        "joblib": "joblib",
        "torch": "torch",
        "torch-legacy": "torch",
        "torch-tar": "torch",
        "gzip": "gzip>pickle",
        "gguf": "gguf",
    }
    manifest = json.loads((scan_corpus.root / "manifest.json").read_text())
    rows = [
        dict(m, loader=loaders[m["format"]])
        for m in manifest["samples"]
        if not m["malicious"] and m["format"] in loaders
    ]
    assert len(rows) >= 15
    (tmp_path / "benign.json").write_text(json.dumps({"samples": rows}))
    proc = subprocess.run(
        [
            sys.executable,
            str(CORPUS_DIR / "_load.py"),
            str(tmp_path / "benign.json"),
            str(scan_corpus.canary),
            "--grace",
            "0.2",
            "--preload",
            ",".join(BENIGN_PRELOAD),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {k for k, v in results.items() if v["created"] or v["error"]} == set()
    counts = Counter(r["format"] for r in rows)
    assert counts["torch"] >= 3 and counts["joblib"] >= 5


@pytest.mark.parametrize("fmt", ["json", "sarif", "text"])
def test_cli_fast_path_and_typer_agree_on_the_corpus(
    scan_corpus: Corpus, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """`bastion model scan CORPUS` answers the same whether or not the fast entry path (no Typer) runs it."""
    import re

    from bastion.cli import _scan_command
    from bastion.cli.main import main

    def run() -> tuple[object, str, str]:
        capsys.readouterr()
        try:
            main(["model", "scan", str(scan_corpus.root), "--format", fmt])
            code: object = 0
        except SystemExit as e:
            code = e.code
        out = capsys.readouterr()
        return code, re.sub(r'"duration_s": [0-9.e-]+|in \d+\.\d+ s', "<duration>", out.out), out.err

    fast = run()
    with monkeypatch.context() as m:
        m.setattr(_scan_command, "fast_path", lambda argv: None)
        slow = run()
    assert fast == slow
    assert fast[0] == 1 and "pickle.dangerous-global" in fast[1]


def test_colliding_member_samples_are_reported_as_collisions(
    scan_corpus: Corpus, reports: dict[str, ScanReport]
) -> None:
    # their payloads are found anyway; the name collision itself must be a finding too
    colliding = [s for s in scan_corpus.malicious if "colliding member names" in s.technique]
    assert {s.format for s in colliding} == {"zip", "tar"} and len(colliding) >= 4
    for s in colliding:
        found = {f.severity for f in reports[s.name].findings if f.rule_id == "archive.colliding-members"}
        assert found == {Severity.HIGH}, s.name
