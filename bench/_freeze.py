"""Record the environment of a benchmark run beside its results: versions, load, commit, ``pip freeze``.

Every figure in ``bench/*/RESULTS.md`` must name the versions it ran with and the load of the machine
(issue 18); a run script makes that true by calling one function at the start of its run::

    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the bench/ folder
    from _freeze import record_environment

    env = record_environment(Path(__file__).parent, {"bastion": sys.executable,
                                                     "mlflow": "/work/bench-venvs/mlflow/bin/python"})
    ...                                        # run the benchmark
    env.finish()                               # adds the load average at the end of the run
    print(env.markdown())                      # lines to paste into RESULTS.md

It writes, into the results folder:

* ``freeze-<name>.txt`` for each venv: a header line with its interpreter version, path and the time,
  then ``pip freeze --all``;
* ``environment.txt``: the time, the git commit (``+dirty`` when the work tree has changes), the machine
  (CPU count, kernel), each venv's Python version, and the load average (1/5/15 min) at the start and,
  after ``finish()``, at the end.

``from bench._freeze import record_environment`` also works when the repository root is on ``sys.path``.
The shell form records the same files: ``python bench/_freeze.py bench/serving bastion=/work/venv/bin/python
mlflow=/work/bench-venvs/mlflow/bin/python``. ``record_freezes`` (the older call) still writes only the
freeze files.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Environment", "freeze_text", "load_average", "record_environment", "record_freezes"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_REPO = Path(__file__).resolve().parents[1]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def _python_version(python: str) -> str:
    return subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                          text=True, check=True, timeout=60).stdout.strip()


def freeze_text(python: str) -> str:
    """``pip freeze`` of the environment of interpreter ``python``, headed by its version and the date."""
    frozen = subprocess.run([python, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True,
                            timeout=120).stdout
    return f"# python {_python_version(python)} ({python}), recorded {_now()}\n{frozen}"


def load_average() -> str:
    """The 1/5/15-minute load average as ``"1.23 / 2.34 / 3.45"`` (what ``uptime`` prints)."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def _git_commit() -> str:
    try:
        head = subprocess.run(["git", "-C", str(_REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(_REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return head + ("+dirty" if dirty else "")


def _check_names(venvs: Mapping[str, str]) -> None:
    for name in venvs:
        if not _NAME.fullmatch(name):
            raise ValueError(f"venv name must be letters, digits, '.', '_' or '-'; got {name!r}")


def record_freezes(results_dir: str | os.PathLike[str], interpreters: Mapping[str, str]) -> list[Path]:
    """Write ``freeze-<name>.txt`` into ``results_dir`` for each ``name -> python`` pair; returns the paths."""
    _check_names(interpreters)
    out_dir = Path(results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, python in interpreters.items():
        path = out_dir / f"freeze-{name}.txt"
        path.write_text(freeze_text(python), encoding="utf-8")
        written.append(path)
    return written


@dataclass
class Environment:
    """What ``record_environment`` recorded; ``finish()`` adds the end-of-run load, ``markdown()`` summarises."""

    path: Path
    started: str
    commit: str
    machine: str
    pythons: dict[str, str]
    freezes: list[Path]
    load_start: str
    load_end: str | None = None
    finished: str | None = None
    _header: list[str] = field(default_factory=list, repr=False)

    def _write(self) -> None:
        lines = [*self._header, f"load average at start (1/5/15 min): {self.load_start}"]
        if self.load_end is not None:
            lines += [f"finished: {self.finished}", f"load average at end (1/5/15 min): {self.load_end}"]
        self.path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def finish(self) -> str:
        """Record the load average at the end of the run (and the time); returns it."""
        self.load_end = load_average()
        self.finished = _now()
        self._write()
        return self.load_end

    def load_text(self) -> str:
        """``"load average 1.00 / 2.00 / 3.00 at start, 4.00 / 5.00 / 6.00 at end"`` (end only after finish)."""
        text = f"load average {self.load_start} at start"
        return text + (f", {self.load_end} at end" if self.load_end is not None else "")

    def versions(self, venv: str, *packages: str) -> str:
        """``"numpy 2.4.6, pandas 3.1.2"``: the versions of ``packages`` in venv ``venv``, read from its freeze file.

        A package the venv does not have is named ``"<name> not installed"``, never left out silently.
        """
        path = self.path.parent / f"freeze-{venv}.txt"
        if venv not in self.pythons or not path.is_file():
            raise ValueError(f"no venv {venv!r} was recorded; recorded: {', '.join(self.pythons)}")
        pinned = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            name, sep, version = line.partition("==")
            if sep:
                pinned[_canonical(name)] = version.strip()
        return ", ".join(f"{p} {pinned[_canonical(p)]}" if _canonical(p) in pinned else f"{p} not installed"
                         for p in packages)

    def markdown(self) -> str:
        """A few Markdown lines naming commit, machine, Python versions, load and freeze files for RESULTS.md."""
        pythons = ", ".join(f"{name}: Python {version}" for name, version in self.pythons.items())
        freezes = ", ".join(f"`{p.name}`" for p in self.freezes)
        return (f"Run {self.started} at commit {self.commit}; {self.machine}; {self.load_text()} (1/5/15 min).\n"
                f"Interpreters: {pythons}; packages: {freezes}; details: `{self.path.name}`.")


def record_environment(results_dir: str | os.PathLike[str], venvs: Mapping[str, str] | None = None) -> Environment:
    """Record versions, load, commit and ``pip freeze`` of each venv into ``results_dir``.

    ``venvs`` maps a short name (letters, digits, ``.``, ``_``, ``-``) to the Python interpreter of a venv the
    run uses; the default is ``{"bastion": sys.executable}``. Call it at the start of the run and call
    ``finish()`` on the result at the end.
    """
    interpreters = dict(venvs) if venvs is not None else {"bastion": sys.executable}
    if not interpreters:
        raise ValueError("record_environment needs at least one venv (name -> python)")
    _check_names(interpreters)
    load_start = load_average()          # before the freezes spawn processes of their own
    started = _now()
    out_dir = Path(results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pythons = {name: _python_version(python) for name, python in interpreters.items()}
    freezes = record_freezes(out_dir, interpreters)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"
    commit = _git_commit()
    header = [f"recorded: {started}", f"commit: {commit}", f"machine: {machine}",
              *(f"venv {name}: Python {pythons[name]} ({python}), packages in freeze-{name}.txt"
                for name, python in interpreters.items())]
    env = Environment(path=out_dir / "environment.txt", started=started, commit=commit, machine=machine,
                      pythons=pythons, freezes=freezes, load_start=load_start, _header=header)
    env._write()
    return env


def main(argv: list[str]) -> int:
    if len(argv) < 1 or any("=" not in a for a in argv[1:]):
        sys.stderr.write("usage: python bench/_freeze.py RESULTS_DIR [NAME=PYTHON ...] (default bastion=this python)\n")
        return 2
    pairs = dict(a.split("=", 1) for a in argv[1:]) or None
    try:
        env = record_environment(argv[0], pairs)
    except (ValueError, OSError, subprocess.SubprocessError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(env.markdown() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
