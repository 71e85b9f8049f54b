"""Model versions: register (estimator, file or folder) with scan, lineage, code and environment;
look up, load safely, diff, lineage tree, soft-delete and garbage collection.
"""

from __future__ import annotations

import copy
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, func, select

from bastion.errors import DataError, NotFoundError, RegistryError, UnsafeArtifactError
from bastion.flavors import ModelAdapter, detect_flavor, get_flavor, is_servable
from bastion.flavors.mitigated import MitigationSpec
from bastion.flavors.sklearn import save_estimator
from bastion.registry import _scanning
from bastion.registry._common import aliases_of, dumps, loads, now_iso, resolve_version
from bastion.registry.environment import capture_code, capture_environment
from bastion.registry.records import DatasetVersion, ModelVersion
from bastion.registry.refs import check_name, parse_ref
from bastion.store.schema import aliases, attachments, datasets, models

if TYPE_CHECKING:
    from bastion.project import Project
    from bastion.protocols import ProjectHandle

KIND = "model"

# Built once with bind parameters (statement construction dominates lookups on SQLite).
# Every alias of the version found, in the same statement (one round trip: a lookup is one statement).
# Alias names are letters, digits, '_' and '-' (refs.ALIAS_RE), so ',' separates them unambiguously.
_all_aliases = aliases.alias("all_aliases")
_ALIASES_COL = (
    select(func.aggregate_strings(_all_aliases.c.alias, ","))
    .where(_all_aliases.c.kind == KIND, _all_aliases.c.name == models.c.name,
           _all_aliases.c.version == models.c.version)
    .scalar_subquery()
    .label("all_aliases")
)
_BY_ALIAS = (
    select(models, _ALIASES_COL)
    .join(aliases, and_(aliases.c.name == models.c.name, aliases.c.version == models.c.version))
    .where(aliases.c.kind == KIND, aliases.c.name == bindparam("k_name"), aliases.c.alias == bindparam("k_alias"))
)
_BY_VERSION = select(models, _ALIASES_COL).where(models.c.name == bindparam("k_name"),
                                                 models.c.version == bindparam("k_version"))
_MAX_VERSION = select(func.max(models.c.version)).where(models.c.name == bindparam("k_name"))
_INSERT_MODEL = models.insert()
_env_digest_cache: dict[int, str] = {}

# Loaded models by (store, digest, trusted types): a hit is re-checked against the blob file's identity
# (inode, size, mtime), so a swapped blob is loaded (and refused) afresh; callers get a deep copy.
_LOAD_CACHE: OrderedDict[tuple[Any, ...], tuple[tuple[int, int, int], Any]] = OrderedDict()
_LOAD_CACHE_MAX = 8
_LOAD_CACHE_MAX_BYTES = 64 << 20
_load_lock = threading.Lock()


def _blob_identity(project: Project, digest: str) -> tuple[Any, ...] | None:
    identity = getattr(project.blobs, "identity", None)
    if identity is not None:  # an object store: its ETag and size (a swapped object changes them)
        ident: tuple[Any, ...] | None = identity(digest)
        return ident
    path_of = getattr(project.blobs, "path_of", None)
    if path_of is None:
        return None
    try:
        st = os.stat(path_of(digest))
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _row(r: Any, al: tuple[str, ...] = ()) -> ModelVersion:
    return ModelVersion(
        name=r.name,
        version=int(r.version),
        digest=r.digest,
        artifact_kind=r.artifact_kind,
        artifact_name=r.artifact_name,
        size=r.size,
        framework=r.framework,
        flavor=r.flavor,
        metrics=loads(r.metrics_json, {}),
        params=loads(r.params_json, {}),
        tags=loads(r.tags_json, {}),
        description=r.description or "",
        datasets=loads(r.datasets_json, []),
        parent=r.parent,
        code=loads(r.code_json, {}),
        environment_digest=r.environment_digest,
        scan_status=r.scan_status,
        created_at=r.created_at,
        created_by=r.created_by,
        deleted_at=r.deleted_at,
        aliases=al,
    )


def _check_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if not isinstance(k, str) or not k:
            raise RegistryError(f"Metric names must be non-empty strings; got {k!r}.")
        try:
            out[k] = float(v)
        except (TypeError, ValueError) as e:
            raise RegistryError(f"Metric '{k}' must be a number; got {v!r}.") from e
    return out


def _dataset_refs(project: Project, items: list[Any]) -> list[str]:
    refs = []
    for item in items:
        if isinstance(item, DatasetVersion):
            refs.append(item.ref)
        elif isinstance(item, str):
            dv = project.get_dataset(item)  # resolves aliases/latest to a fixed version, and checks it exists
            refs.append(dv.ref)
        else:
            raise RegistryError(f"Datasets are given as DatasetVersion or 'name:version'; got {type(item).__name__}.")
    return refs


def _environment_digest(project: Project) -> str:
    # the environment document is the same for every model logged by this process: store it once
    key = id(project.blobs)
    if key not in _env_digest_cache:
        _env_digest_cache[key] = project.blobs.put_bytes(json.dumps(capture_environment(), sort_keys=True).encode())
    return _env_digest_cache[key]


def register(
    project: Project,
    model: Any,
    *,
    name: str,
    datasets: list[Any],
    metrics: dict[str, Any],
    params: dict[str, Any],
    tags: dict[str, str],
    description: str,
    parent: str | None,
    allow_findings: dict[str, str],
    progress: Callable[[int, int], None] | None = None,
    flavor: str | None = None,
    convert: str | None = None,
    trusted: list[str] | None = None,
    feature_names: list[str] | None = None,
) -> ModelVersion:
    from bastion.registry._validate import validate_artifact

    check_name(name, "model name")
    metrics_f = _check_metrics(metrics)
    dataset_refs = _dataset_refs(project, datasets)
    parent_ref = project.get_model(parent, include_deleted=True).ref if parent else None
    flavor_doc: dict[str, Any] | None = None
    with project.tempdir() as tmp:
        if isinstance(model, str | Path):
            path = Path(model)
            if not path.exists():
                raise DataError(f"Model file {path} does not exist.")
            if path.is_symlink():
                raise DataError(f"{path} is a symbolic link; give the real file or folder.")
            if flavor is not None:
                framework, flavor = get_flavor(flavor).framework(), flavor
            else:
                found = detect_flavor(path)
                if found is None:
                    raise DataError(
                        f"{path.name} is not a model format Bastion recognises (skops, ONNX, XGBoost JSON/UBJ, "
                        "LightGBM text, joblib/pickle, PyTorch, Keras, NumPy, GGUF, safetensors). To keep it as an "
                        "opaque artifact (scanned, signed, versioned, never gated or served), register it with "
                        "--flavor file."
                    )
                framework, flavor = found
            if convert and flavor not in ("pickle", "joblib"):
                raise DataError(f"--convert skops converts pickle or joblib files; {path.name} is flavor '{flavor}'.")
        else:
            if flavor is not None or convert is not None or feature_names is not None:
                raise DataError("flavor=, convert= and feature_names= apply to model files; an in-memory estimator "
                                "is saved with skops.")
            path, framework, flavor = save_estimator(model, Path(tmp))
            info = get_flavor("skops").info(model)  # the estimator in hand: its signature without a reload
            flavor_doc = {**info.to_dict(), "framework": framework,
                          "requirements": [framework, *info.requirements[1:]]}
        scan_doc = _scanning.scan_for_register(project, path, allow_findings=allow_findings)
        if isinstance(model, str | Path):
            info, converted = validate_artifact(
                project, path, flavor, dataset_refs=dataset_refs, trusted=trusted, convert=convert,
                scan_status=scan_doc["status"] if scan_doc else "unscanned", workdir=Path(tmp),
                feature_names=feature_names,
                allowed_globals=tuple(scan_doc.get("allowed_globals") or ()) if scan_doc else (),
            )
            if converted is not None:
                original = path.name
                path, flavor = converted, "skops"
                scan_doc = _scanning.scan_for_register(project, path, allow_findings=allow_findings)
                info = type(info)(**{**info.__dict__, "notes": (*info.notes, f"original file: {original}")})
            framework = info.framework
            flavor_doc = info.to_dict()
            if flavor == "mitigated":  # its lineage parent is the base it applies thresholds to, nothing else
                base_ref = MitigationSpec.parse(path.read_bytes(), what=path.name).base_ref
                if parent_ref not in (None, base_ref):
                    raise RegistryError(f"{path.name} applies fairness thresholds to {base_ref}; its parent cannot "
                                        f"be {parent_ref}.")
                parent_ref = base_ref
            if trusted:
                flavor_doc["trusted_types"] = sorted(trusted)
        digest, kind = project.blobs.put(path, progress=progress)
        size = path.stat().st_size if kind == "file" else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        artifact_name = path.name
    env_digest = _environment_digest(project)
    code = capture_code()
    values: dict[str, Any] = {
        "digest": digest,
        "artifact_kind": kind,
        "artifact_name": artifact_name,
        "size": size,
        "framework": framework,
        "flavor": flavor,
        "metrics_json": dumps(metrics_f),
        "params_json": dumps(params),
        "tags_json": dumps(tags),
        "description": description,
        "datasets_json": dumps(dataset_refs),
        "parent": parent_ref,
        "code_json": dumps(code),
        "environment_digest": env_digest,
        "scan_status": scan_doc["status"] if scan_doc else "unscanned",
        "created_by": project.actor,
        "deleted_at": None,
        "deleted_by": None,
    }
    with project.transaction() as conn:
        version = int(conn.execute(_MAX_VERSION, {"k_name": name}).scalar() or 0) + 1
        ref = f"{name}:{version}"
        values.update(name=name, version=version, created_at=now_iso())
        conn.execute(_INSERT_MODEL, values)
        scan_digest = (
            _scanning.attach_in(project, conn, name, version, scan_doc, audit=False) if scan_doc is not None else None
        )
        flavor_digest = None
        if flavor_doc is not None:
            from bastion.registry._attachments import insert_doc

            flavor_digest = insert_doc(project, conn, "model", name, version, "flavor", flavor_doc, audit=False)
        # one audit entry covers the version and its scan report (the report's digest is in it)
        register_entry = project.record(
            conn,
            "model.register",
            ref,
            {
                "digest": digest,
                "datasets": dataset_refs,
                "parent": parent_ref,
                "flavor": flavor,
                "scan": scan_doc["status"] if scan_doc else "unscanned",
                "scan_report": scan_digest,
                "flavor_document": flavor_digest,
                "requirements": (flavor_doc or {}).get("requirements", []),
                "allowed_findings": allow_findings or {},
                # what the restricted unpickler may import when this version is loaded (bound to this record)
                "allowed_globals": list((scan_doc or {}).get("allowed_globals") or []),
            },
        )
    if scan_doc is not None and scan_doc.get("allowed_globals"):
        # anchor the allowance at once (with an audit key): loads verify it against a signed checkpoint
        from bastion.audit.checkpoints import write_checkpoint

        write_checkpoint(project, vouch=[register_entry])
    return _row(_Values(values))


class _Values:
    """Attribute access over the inserted values, so a new version is returned without reading it back."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def get(project: Project, ref: str, *, include_deleted: bool = False) -> ModelVersion:
    r = parse_ref(ref)
    with project.db.quick_read() as conn:
        if r.alias is not None:  # the hot path of serving and load_model("name@alias"): one join
            row = conn.execute(_BY_ALIAS, {"k_name": r.name, "k_alias": r.alias}).first()
        elif r.version is not None:
            row = conn.execute(_BY_VERSION, {"k_name": r.name, "k_version": r.version}).first()
        else:
            row = None
    if row is None:
        with project.db.read() as conn:  # "latest", or not found: resolve_version's message names what exists
            name, version = resolve_version(conn, models, KIND, r)
            row = conn.execute(_BY_VERSION, {"k_name": name, "k_version": version}).one()
    mv = _row(row, tuple(sorted(row.all_aliases.split(","))) if row.all_aliases else ())
    if mv.deleted and not include_deleted:
        raise RegistryError(f"Model {mv.ref} was deleted on {mv.deleted_at}; it cannot be used.")
    return mv


def list_versions(project: Project, name: str | None, *, include_deleted: bool) -> list[ModelVersion]:
    q = select(models)
    if name:
        q = q.where(models.c.name == check_name(name, "model name"))
    if not include_deleted:
        q = q.where(models.c.deleted_at.is_(None))
    with project.db.read() as conn:
        rows = conn.execute(q.order_by(models.c.name, models.c.version)).all()
        if name and not rows:
            resolve_version(conn, models, KIND, name)  # raises NotFoundError naming what exists
        als = {n: aliases_of(conn, KIND, n) for n in {r.name for r in rows}}
    return [_row(r, als[r.name].get(int(r.version), ())) for r in rows]


def materialize(project: Project, ref: str, dest: str | Path | None) -> Path:
    mv = get(project, ref, include_deleted=True)
    if dest is None:
        base = project.home / "cache" / "models" / mv.digest.replace(":", "-")
        base.mkdir(parents=True, exist_ok=True)
        dest = base / mv.artifact_name
    return project.blobs.materialize(mv.digest, dest, what=f"model {mv.ref}")


def load(project: Project, ref: str, *, trusted: list[str] | None) -> Any:
    """Load a model version without running code it carries: skops with a trusted-types check,
    pickles and joblib files only after a clean recorded scan, and then only through the restricted
    unpickler (``trusted`` names the extra globals an operator has audited)."""
    mv = get(project, ref)
    if mv.artifact_kind != "file":
        raise UnsafeArtifactError(f"{mv.ref} is a folder artifact; load it with its framework from model_path().")
    if trusted:
        project.audited("model.load.trusted_types", mv.ref, {"trusted": sorted(trusted)})
    allowed: tuple[str, ...] = ()
    if mv.flavor in ("pickle", "joblib") and mv.scan_status == "allowed":
        # the globals allowed at registration, verified against the audited registration record on every load
        allowed = _scanning.audited_allowed_globals(project, mv)
    if allowed:
        trusted = sorted({*(trusted or []), *allowed})
    key = (id(project.blobs), mv.digest, tuple(sorted(trusted or [])))
    ident = _blob_identity(project, mv.digest)
    with _load_lock:
        hit = _LOAD_CACHE.get(key)
    if hit is not None and ident is not None and hit[0] == ident:
        return copy.deepcopy(hit[1])
    obj = _load_uncached(project, mv, trusted)
    if ident is not None and int(ident[1]) <= _LOAD_CACHE_MAX_BYTES:
        with _load_lock:
            _LOAD_CACHE[key] = (ident, obj)
            _LOAD_CACHE.move_to_end(key)
            while len(_LOAD_CACHE) > _LOAD_CACHE_MAX:
                _LOAD_CACHE.popitem(last=False)
        return copy.deepcopy(obj)
    return obj


def _load_uncached(project: Project, mv: ModelVersion, trusted: list[str] | None) -> Any:
    if not is_servable(mv.flavor):
        raise UnsafeArtifactError(
            f"Model {mv.ref} has flavor '{mv.flavor}', which Bastion stores but does not load itself, so it cannot "
            "be gated or served; use model_path() and your framework's safe loader, or register the model as "
            "skops, ONNX, XGBoost JSON/UBJ or LightGBM text."
        )
    if mv.flavor in ("pickle", "joblib") and mv.scan_status not in ("clean", "allowed"):
        raise UnsafeArtifactError(
            f"Model {mv.ref} is a {mv.flavor} file whose recorded scan is '{mv.scan_status}'; Bastion unpickles "
            "only artifacts scanned clean or registered with audited allowed findings (and then only through its "
            "restricted unpickler). Re-save it with skops, or run 'bastion model scan'."
        )
    data = project.blobs.get_bytes(mv.digest, what=f"model {mv.ref}")
    model = get_flavor(mv.flavor).load(data, what=f"Model {mv.ref}", trusted=trusted)
    if isinstance(model, MitigationSpec):  # thresholds over a base version's artifact, loaded by its digest
        return resolve_mitigation(project, model, what=f"Model {mv.ref}")
    if isinstance(model, ModelAdapter) and getattr(model, "feature_names_in_", None) is None:
        # the registry (never the artifact) says which dataset columns an unnamed-input model takes
        docs = project.attachments(mv.ref, "flavor")
        cols = docs[-1].get("input_columns") if docs else None
        if cols and len(cols) == (getattr(model, "n_features_in_", None) or len(cols)):
            model.bind_columns([str(c) for c in cols])
    return model


def resolve_mitigation(project: Project, spec: MitigationSpec, *, what: str) -> Any:
    """The mitigated classifier a stored :class:`MitigationSpec` describes: its base version loaded through that
    version's flavor, refused unless the base still exists with exactly the digest the document records."""
    import numpy as np

    from bastion.gates.mitigate import MitigatedClassifier

    try:
        base_mv = get(project, spec.base_ref)
    except (NotFoundError, RegistryError) as e:
        raise UnsafeArtifactError(f"{what} applies fairness thresholds to {spec.base_ref}, which cannot be used: "
                                  f"{e}") from e
    if base_mv.digest != spec.base_digest or base_mv.flavor != spec.base_flavor:
        raise UnsafeArtifactError(
            f"{what} was made from {spec.base_ref} with digest {spec.base_digest} ({spec.base_flavor}); the registry "
            f"now records {base_mv.digest} ({base_mv.flavor}). Nothing was loaded.")
    base = load(project, base_mv.ref, trusted=None)
    if not isinstance(base, ModelAdapter):
        raise UnsafeArtifactError(f"{what}: its base {base_mv.ref} did not load as a {spec.base_flavor} model.")
    model = MitigatedClassifier(
        base=base, method=spec.method, sensitive=list(spec.sensitive), groups=list(spec.groups),
        params=np.asarray(spec.params, dtype=np.float64).reshape(-1, 6), classes=np.asarray(spec.classes),
        feature_names=np.asarray(spec.feature_names, dtype=object),
        base_features=np.asarray(spec.base_features, dtype=object))
    model.base_flavor_ = spec.base_flavor  # what the flavor document and the ML-BOM name as the framework
    model.base_ref_ = base_mv.ref
    return model


def diff(project: Project, a: str, b: str) -> dict[str, Any]:
    ma, mb = get(project, a, include_deleted=True), get(project, b, include_deleted=True)

    def changes(x: dict[str, Any], y: dict[str, Any]) -> dict[str, Any]:
        return {k: {"a": x.get(k), "b": y.get(k)} for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)}

    return {
        "a": ma.ref,
        "b": mb.ref,
        "params": changes(ma.params, mb.params),
        "metrics": changes(ma.metrics, mb.metrics),
        "tags": changes(ma.tags, mb.tags),
        "datasets": {"a": ma.datasets, "b": mb.datasets, "same": ma.datasets == mb.datasets},
        "digest": {"a": ma.digest, "b": mb.digest, "same": ma.digest == mb.digest},
        "framework": {"a": ma.framework, "b": mb.framework},
        "code": {"a": ma.code, "b": mb.code},
    }


def lineage(project: Project, ref: str) -> dict[str, Any]:
    """Tree from a model version down through its parents to the datasets they were trained on,
    and on to the datasets those were derived from."""
    seen: set[str] = set()

    def dataset_node(dref: str) -> dict[str, Any]:
        try:
            dv = project.get_dataset(dref, include_deleted=True)
        except NotFoundError:
            return {"kind": "dataset", "ref": dref, "missing": True, "children": []}
        children = []
        for src in dv.derived_from:
            if src in seen:
                continue
            seen.add(src)
            if src.startswith("sha256:"):
                children.append({"kind": "source", "digest": src, "children": []})
            else:
                children.append(dataset_node(src))
        return {
            "kind": "dataset",
            "ref": dv.ref,
            "digest": dv.digest,
            "rows": dv.rows,
            "deleted": dv.deleted,
            "children": children,
        }

    def model_node(mref: str) -> dict[str, Any]:
        mv = get(project, mref, include_deleted=True)
        children = [dataset_node(d) for d in mv.datasets]
        if mv.parent and mv.parent not in seen:
            seen.add(mv.parent)
            children.append(model_node(mv.parent))
        return {
            "kind": "model",
            "ref": mv.ref,
            "digest": mv.digest,
            "aliases": list(mv.aliases),
            "deleted": mv.deleted,
            "children": children,
        }

    return model_node(ref)


def delete(project: Project, ref: str, *, reason: str) -> ModelVersion:
    parse_ref(ref)
    with project.transaction() as conn:
        name, version = resolve_version(conn, models, KIND, ref)
        r = conn.execute(select(models).where(models.c.name == name, models.c.version == version)).one()
        if r.deleted_at is not None:
            raise RegistryError(f"Model {name}:{version} is already deleted.")
        al = aliases_of(conn, KIND, name).get(version, ())
        if al:
            raise RegistryError(
                f"Model {name}:{version} is behind alias(es) {', '.join(al)}; move or roll them back first."
            )
        users = [f"{n}:{v}" for n, v in conn.execute(select(models.c.name, models.c.version).where(
            models.c.parent == f"{name}:{version}", models.c.flavor == "mitigated", models.c.deleted_at.is_(None)))]
        if users:
            raise RegistryError(
                f"Model {name}:{version} is the base whose artifact the mitigated version(s) {', '.join(users)} load; "
                "delete those first."
            )
        conn.execute(models.update().where(models.c.id == r.id).values(deleted_at=now_iso(), deleted_by=project.actor))
        project.record(conn, "model.delete", f"{name}:{version}", {"reason": reason})
    return get(project, f"{name}:{version}", include_deleted=True)


def gc(project: Project, *, dry_run: bool) -> list[str]:
    """Remove blobs referenced only by deleted versions (or by nothing)."""
    live: set[str] = set()
    with project.db.read() as conn:
        for digest, env in conn.execute(
            select(models.c.digest, models.c.environment_digest).where(models.c.deleted_at.is_(None))
        ):
            live.add(digest)
            if env:
                live.add(env)
        for (digest,) in conn.execute(select(datasets.c.digest).where(datasets.c.deleted_at.is_(None))):
            live.add(digest)
        for (digest,) in conn.execute(select(attachments.c.digest)):
            live.add(digest)
        # environment documents of deleted models are shared with live ones; keep every env digest
        for (env,) in conn.execute(select(models.c.environment_digest)):
            if env:
                live.add(env)
    expanded = set(live)
    for d in live:
        try:
            files = project.blobs.read_manifest(d) if project.blobs.exists(d) else None
        except Exception:  # an unreadable blob is kept; verification reports it
            files = None
        for f in files or []:
            expanded.add(f["digest"])
    doomed = [d for d in project.blobs.iter_digests() if d not in expanded]
    if not dry_run:
        for d in doomed:
            project.blobs.delete(d)
        from bastion.store.blobs import LocalBlobStore

        if isinstance(project.blobs, LocalBlobStore):
            project.blobs.clean_tmp()
        project.audited("store.gc", "artifacts", {"deleted": len(doomed)})
    return doomed


def audited_lineage(project: ProjectHandle, mv: ModelVersion) -> list[str]:
    """The datasets ``mv`` was registered with, as its audited ``model.register`` entry says, each checked against
    its own audited registration (digest): what a drift monitor may use as the reference. The version row's
    lineage and the dataset rows are caches; a mismatch (edited in the database) raises VerificationError."""
    from bastion.errors import VerificationError

    entry = project.audit.newest(("model.register",), subject=mv.ref,
                                 match=lambda e: e.details.get("digest") == mv.digest)
    if entry is None:
        raise VerificationError(f"No audited registration of {mv.ref} with digest {mv.digest}: the version row was "
                                "edited or added outside Bastion; run `bastion audit verify`.")
    recorded = [str(d) for d in entry.details.get("datasets") or []]
    if recorded != [str(d) for d in mv.datasets]:
        raise VerificationError(
            f"The lineage of {mv.ref} in the database ({', '.join(mv.datasets) or 'none'}) is not the one its "
            f"registration recorded (entry {entry.seq}: {', '.join(recorded) or 'none'}); the row was edited outside "
            "Bastion. Run `bastion audit verify`.")
    for ref in recorded:
        dv = project.get_dataset(ref)
        reg = project.audit.newest(("dataset.register",), subject=dv.ref)
        if reg is None or reg.details.get("digest") != dv.digest:
            raise VerificationError(f"Dataset {dv.ref} has digest {dv.digest} in the database, but its audited "
                                    f"registration says {reg.details.get('digest') if reg else 'nothing'}; the row "
                                    "was edited outside Bastion. Run `bastion audit verify`.")
    return recorded

