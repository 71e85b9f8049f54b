"""Dataset versions: register (DataFrame, file or folder), look up, read back verified, soft-delete."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from bastion.errors import DataError, RegistryError
from bastion.registry._common import aliases_of, dumps, loads, next_version, now_iso, resolve_version
from bastion.registry.records import DatasetVersion
from bastion.registry.refs import check_name
from bastion.store.schema import datasets

if TYPE_CHECKING:
    from bastion.project import Project

KIND = "dataset"


def _row(r: Any, al: tuple[str, ...] = ()) -> DatasetVersion:
    return DatasetVersion(
        name=r.name,
        version=int(r.version),
        digest=r.digest,
        fmt=r.fmt,
        rows=r.rows,
        size=r.size,
        schema=loads(r.schema_json, []),
        stats=loads(r.stats_json, {}),
        description=r.description or "",
        tags=loads(r.tags_json, {}),
        derived_from=loads(r.derived_from_json, []),
        extra=loads(r.extra_json, {}),
        created_at=r.created_at,
        created_by=r.created_by,
        deleted_at=r.deleted_at,
        aliases=al,
    )


def register(
    project: Project,
    source: Any,
    *,
    name: str,
    description: str,
    tags: dict[str, str],
    derived_from: list[str],
    extra: dict[str, Any],
    progress: Callable[[int, int], None] | None = None,
) -> DatasetVersion:
    from bastion.registry.tables import iter_batches, summarize

    check_name(name, "dataset name")
    with project.tempdir() as tmp:
        path, fmt = _source_path(source, Path(tmp))
        schema, stats, rows = summarize(iter_batches(path))
        size = _size(path)
        digest, kind = project.blobs.put(path, progress=progress)
        if kind == "dir":
            fmt = f"dir-{fmt}"
    with project.transaction() as conn:
        version = next_version(conn, datasets, name)
        ts = now_iso()
        conn.execute(
            datasets.insert().values(
                name=name,
                version=version,
                digest=digest,
                fmt=fmt,
                rows=rows,
                size=size,
                schema_json=dumps(schema),
                stats_json=dumps(stats),
                description=description,
                tags_json=dumps(tags),
                derived_from_json=dumps(derived_from),
                extra_json=dumps(extra),
                created_at=ts,
                created_by=project.actor,
            )
        )
        project.record(
            conn,
            "dataset.register",
            f"{name}:{version}",
            {"digest": digest, "rows": rows, "format": fmt, "derived_from": derived_from},
        )
        row = conn.execute(select(datasets).where(datasets.c.name == name, datasets.c.version == version)).one()
    return _row(row)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _source_path(source: Any, tmp: Path) -> tuple[Path, str]:
    """A local path holding the data, and its format; DataFrames are written to Parquet."""
    from bastion.registry.tables import detect_format

    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(source, pd.DataFrame):
        if source.columns.duplicated().any():
            dupes = sorted(set(map(str, source.columns[source.columns.duplicated()])))
            raise DataError(f"The DataFrame has duplicate column names: {', '.join(dupes)}.")
        out = tmp / "data.parquet"
        try:
            source.to_parquet(out, index=False)
        except (ValueError, TypeError, ImportError) as e:
            raise DataError(f"The DataFrame cannot be written as Parquet: {e}") from e
        return out, "parquet"
    if isinstance(source, str | os.PathLike):
        p = Path(source)
        if not p.exists():
            raise DataError(f"{p} does not exist.")
        if p.is_symlink():
            raise DataError(f"{p} is a symbolic link; give the real file or folder.")
        if p.is_dir():
            fmts = {detect_format(f) for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")}
            if fmts != {"parquet"}:
                raise DataError(f"A dataset folder must hold only Parquet files; {p} holds {sorted(fmts) or 'none'}.")
            return p, "parquet"
        fmt = detect_format(p)
        for comp in (".gz", ".bz2", ".zst"):
            if p.name.lower().endswith(comp):
                fmt += comp
        return p, fmt
    raise DataError(f"Cannot register a {type(source).__name__} as a dataset: give a pandas DataFrame or a path.")


def get(project: Project, ref: str, *, include_deleted: bool = False) -> DatasetVersion:
    with project.db.read() as conn:
        name, version = resolve_version(conn, datasets, KIND, ref)
        r = conn.execute(select(datasets).where(datasets.c.name == name, datasets.c.version == version)).one()
        al = aliases_of(conn, KIND, name).get(version, ())
    dv = _row(r, al)
    if dv.deleted and not include_deleted:
        raise RegistryError(f"Dataset {dv.ref} was deleted on {dv.deleted_at}.")
    return dv


def list_versions(project: Project, name: str | None, *, include_deleted: bool) -> list[DatasetVersion]:
    q = select(datasets)
    if name:
        q = q.where(datasets.c.name == check_name(name, "dataset name"))
    if not include_deleted:
        q = q.where(datasets.c.deleted_at.is_(None))
    with project.db.read() as conn:
        rows = conn.execute(q.order_by(datasets.c.name, datasets.c.version)).all()
        als = {n: aliases_of(conn, KIND, n) for n in {r.name for r in rows}}
    return [_row(r, als[r.name].get(int(r.version), ())) for r in rows]


def materialize(project: Project, ref: str, dest: str | Path | None) -> Path:
    dv = get(project, ref, include_deleted=True)
    if dest is None:
        cache = project.home / "cache" / "datasets" / dv.digest.replace(":", "-")
        if dv.fmt.startswith("dir-"):
            target = cache
        else:
            target = cache / f"{dv.name}.{_ext(dv.fmt)}"
        if target.exists():
            # a cached copy is re-verified against the digest before use
            from bastion.store.blobs import sha256_file

            if target.is_file() and sha256_file(target) == dv.digest:
                return target
        target.parent.mkdir(parents=True, exist_ok=True)
        return project.blobs.materialize(dv.digest, target, what=f"dataset {dv.ref}")
    return project.blobs.materialize(dv.digest, dest, what=f"dataset {dv.ref}")


def _ext(fmt: str) -> str:
    return fmt if fmt.split(".")[0] in {"parquet", "csv", "jsonl"} else "bin"


def read(project: Project, ref: str) -> Any:
    from bastion.registry.tables import read_table

    path = materialize(project, ref, None)
    return read_table(path).to_pandas()


def delete(project: Project, ref: str, *, reason: str) -> DatasetVersion:
    with project.transaction() as conn:
        name, version = resolve_version(conn, datasets, KIND, ref)
        r = conn.execute(select(datasets).where(datasets.c.name == name, datasets.c.version == version)).one()
        if r.deleted_at is not None:
            raise RegistryError(f"Dataset {name}:{version} is already deleted.")
        conn.execute(
            datasets.update().where(datasets.c.id == r.id).values(deleted_at=now_iso(), deleted_by=project.actor)
        )
        project.record(conn, "dataset.delete", f"{name}:{version}", {"reason": reason})
    return get(project, f"{name}:{version}", include_deleted=True)
