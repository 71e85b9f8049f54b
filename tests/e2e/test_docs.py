"""Every code block of README.md and docs/**/*.md runs as written, page by page, in a scratch project.

The convention is in tests/e2e/docs_blocks.py and docs/dev/conventions.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.docs_blocks import (
    DATA,
    KNOWN,
    RUN_PYTHON,
    RUN_SHELL,
    Block,
    CliServer,
    PageRunner,
    doc_pages,
    parse_blocks,
    scratch_env,
)

ROOT = Path(__file__).resolve().parents[2]
PAGES = [p.relative_to(ROOT).as_posix() for p in doc_pages(ROOT)]


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One warm ``bastion`` for the pages of this worker (tests/e2e/docs_cli.py): each command still runs in a
    process of its own, in the page's folder and environment, with its exit code and signals."""
    server = CliServer(tmp_path_factory.mktemp("docs-cli"), ROOT / "src")
    yield server.socket
    server.close()


def _run_page(page: str, tmp_path: Path, cli_server: Path | None = None) -> list[str]:
    blocks = parse_blocks((ROOT / page).read_text(encoding="utf-8"), page)
    problems = [f"{b.where}: fence without a known language ({b.lang or 'none'}); use bash, python, text, "
                f"yaml, ... (docs/dev/conventions.md)" for b in blocks if b.lang not in KNOWN]
    if problems:
        return problems
    runner = PageRunner(tmp_path, scratch_env(tmp_path, ROOT / "src", cli_server=cli_server))
    try:
        for b in blocks:
            if "file" in b.options:
                target = runner.cwd / b.options["file"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(b.code, encoding="utf-8")
                continue
            if b.lang in RUN_SHELL:
                rc, out = runner.run_shell(b)
            elif b.lang in RUN_PYTHON:
                rc, out = runner.run_python(b)
            else:
                continue
            want = int(b.options.get("exit", "0"))
            if rc is None and "bounded" in b.options:
                continue
            if rc != want:
                return [f"{b.where}: {b.lang} block exited {rc}, expected {want}\n--- block ---\n{b.code}"
                        f"--- output (last 3000 chars) ---\n{out[-3000:]}"]
    finally:
        runner.close()
    return []


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_every_block_of_the_page_runs(page: str, tmp_path: Path, cli_server: Path) -> None:
    problems = _run_page(page, tmp_path, cli_server)
    assert not problems, "\n".join(problems)


def test_every_page_is_found() -> None:
    assert "README.md" in PAGES and "docs/monitoring.md" in PAGES and "docs/dev/conventions.md" in PAGES


# ---------------------------------------------------------------------------- the runner itself

_SAMPLE = """intro
<!-- docs-test: hidden
```bash
echo hidden > made.txt
```
-->

```bash
export GREETING=hi
mkdir sub && cd sub
```

<!-- docs-test: file=conf.yaml -->
```yaml
a: 1
```

```python
import os
x = os.environ["GREETING"] + open("../made.txt").read().strip()
```

<!-- docs-test: exit=1 -->
Some words.

```python
assert x == "hihidden", x
```

```text
not run
```
"""


def test_parser_reads_languages_directives_and_hidden_blocks() -> None:
    blocks = parse_blocks(_SAMPLE, "p.md")
    assert [(b.lang, b.hidden, b.options) for b in blocks] == [
        ("bash", True, {}), ("bash", False, {}), ("yaml", False, {"file": "conf.yaml"}), ("python", False, {}),
        ("python", False, {}),  # the exit=1 directive is separated from the block by words: it does not apply
        ("text", False, {}),
    ]
    assert blocks[1].line == 8 and blocks[0].code == "echo hidden > made.txt\n"


def _runner(tmp_path: Path) -> PageRunner:
    return PageRunner(tmp_path, scratch_env(tmp_path, ROOT / "src"))


def test_shell_and_python_state_carry_over_in_order(tmp_path: Path) -> None:
    runner = _runner(tmp_path)
    try:
        blocks = parse_blocks(_SAMPLE, "p.md")
        assert runner.run_shell(blocks[0])[0] == 0 and runner.run_shell(blocks[1])[0] == 0
        assert runner.cwd.name == "sub"
        assert runner.run_python(blocks[3])[0] == 0
        assert runner.run_python(blocks[4])[0] == 0  # sees x from the block before
        rc, out = runner.run_python(Block("p.md", 1, "python", "assert x == 'other'\n"))
        assert rc == 1 and "AssertionError" in out
    finally:
        runner.close()


@pytest.mark.parametrize(
    ("code", "options", "expected"),
    [
        ("true\n", {}, 0),
        ("false\necho never\n", {}, 1),  # set -e: the first failing command ends the block
        ("false | true\n", {}, 1),  # pipefail
        ("exit 3\n", {}, 3),
        ("sleep 30\n", {"bounded": "0.5"}, None),  # still running when the bound ends: stopped, passes
        ("exit 2\n", {"bounded": "5"}, 2),  # a bounded command that fails fast still fails
    ],
)
def test_shell_exit_codes(code: str, options: dict[str, str], expected: int | None, tmp_path: Path) -> None:
    runner = _runner(tmp_path)
    assert runner.run_shell(Block("p.md", 1, "bash", code, options))[0] == expected


def test_a_fence_without_a_language_fails_the_page(tmp_path: Path) -> None:
    page = tmp_path / "bad.md"
    page.write_text("```\nbastion init\n```\n")
    blocks = parse_blocks(page.read_text(), "bad.md")
    assert [b.lang for b in blocks] == [""] and "" not in KNOWN and "yaml" in DATA


def test_scratch_env_drops_the_callers_bastion_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_PROJECT", "/somewhere/else")
    env = scratch_env(tmp_path, ROOT / "src")
    assert "BASTION_PROJECT" not in env and env["HOME"].startswith(str(tmp_path))
    runner = PageRunner(tmp_path, env)
    rc, out = runner.run_shell(Block("p.md", 1, "bash", "bastion --help > help.txt && cat help.txt\n"))
    assert rc == 0 and "Usage" in out


# ---------------------------------------------------------------------------- the warm `bastion` (docs_cli.py)


def test_warm_bastion_answers_like_a_fresh_process(tmp_path: Path, cli_server: Path) -> None:
    """Exit codes, stdout and stderr apart, the shell's folder and environment: as `python -m bastion.cli`."""
    runner = PageRunner(tmp_path, scratch_env(tmp_path, ROOT / "src", cli_server=cli_server))
    try:
        script = (
            "mkdir sub && cd sub\n"
            "bastion --version > version.txt\n"
            "BASTION_USER=warm-alice bastion init > init.txt\n"
            "bastion model show nope > out.txt 2> err.txt || echo $? > rc.txt\n"
            "bastion no-such-command 2> usage.txt || echo $? >> rc.txt\n"
            "bastion audit log --json | python -c 'import json,sys; print(json.load(sys.stdin)[0][\"actor\"])' "
            "> actor.txt\n"
        )
        rc, out = runner.run_shell(Block("p.md", 1, "bash", script))
        assert rc == 0, out
        sub = tmp_path / "project" / "sub"
        assert (sub / "version.txt").read_text().startswith("bastion ")
        assert (sub / "bastion.toml").is_file() and str(sub) in (sub / "init.txt").read_text()
        assert (sub / "rc.txt").read_text().split() == ["2", "2"]
        assert (sub / "out.txt").read_text() == "" and "No model named 'nope'" in (sub / "err.txt").read_text()
        assert "No such command" in (sub / "usage.txt").read_text()
        assert (sub / "actor.txt").read_text().strip() == "warm-alice"
    finally:
        runner.close()


def test_warm_bastion_passes_signals_on_and_leaves_nothing_running(tmp_path: Path, cli_server: Path) -> None:
    """A bounded block's SIGTERM reaches the warm command (here a server): the port is free again afterwards."""
    import socket
    import time

    from ..conftest import free_port

    port = free_port()
    runner = PageRunner(tmp_path, scratch_env(tmp_path, ROOT / "src", cli_server=cli_server))
    try:
        setup = "bastion init\nBASTION_UI_PASSWORD=docs-test-password-1 bastion users add ann --role admin\n"
        assert runner.run_shell(Block("p.md", 1, "bash", setup))[0] == 0
        block = Block("p.md", 2, "bash", f"bastion ui --port {port}\n", {"bounded": "4"})
        t0 = time.monotonic()
        rc, out = runner.run_shell(block)
        took = time.monotonic() - t0
        assert rc is None, out  # still serving when the bound ended
        assert str(port) in out, out
        # SIGTERM reached the command and it stopped: the runner's SIGKILL 10 s later was not needed
        assert took < 4 + 7, f"the block took {took:.1f} s to stop"

        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        deadline = time.monotonic() + 15
        while listening() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not listening(), "the warm command outlived its block"
    finally:
        runner.close()
