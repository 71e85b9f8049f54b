"""Run protection: plan the operators from the policy and the PII scan, stream the data, build the report.

``protect`` works on in-memory tables; ``protect_file`` streams a file through an engine to Parquet.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from bastion.crypto.keys import Keyring, project_data_keyring, resolve_provider
from bastion.data.protect import operators as ops
from bastion.data.protect._kanon import KAnonPlan, plan_k_anonymity, qi_kind
from bastion.data.protect._linkage import RowLinker, name_dictionary
from bastion.data.protect._plan import ColumnAction, ProtectionPlan, merge_partial
from bastion.data.protect.policy import DEFAULT_QUASI_IDENTIFIER_NAMES, Policy, Rule, load_policy
from bastion.data.protect.report import ColumnProtection, ProtectionReport, k_anonymity
from bastion.errors import ConfigError, DataError, PolicyViolation

__all__ = ["build_plan", "file_digest", "project_keyring", "protect", "protect_file", "report_path_for"]

log = logging.getLogger("bastion.data.protect")
_KEYED = ("tokenize", "hash")
_QI_ENTITIES = ("DATE_OF_BIRTH", "US_ZIP")
TOKEN_SCOPE = "project"  # noqa: S105 - a key scope name, not a secret


def _as_policy(policy: Policy | Mapping[str, Any] | str | Path | None) -> Policy:
    if policy is None or isinstance(policy, Policy):
        return policy or Policy()
    if isinstance(policy, str | Path):
        return load_policy(policy)
    return Policy.from_dict(policy)


def project_keyring(root: str | Path | None = None, *, passphrase: str | None = None) -> Keyring:
    """The data key ring of the project at ``root`` (nearest project by default), in its metadata database."""
    from bastion.project import open_project

    project = open_project(root)
    return project_data_keyring(project, resolve_provider(project.settings.key_path, passphrase=passphrase))


def read_columns(path: Path, columns: list[str]) -> pa.Table:
    """Whole columns of a Parquet or CSV file (only those columns are decoded)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from bastion.engine import open_source

    src = open_source(path)
    try:
        if src.format == "parquet":
            return pq.read_table(path, columns=columns)
        return pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(include_columns=columns),
        )
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"Reading columns {columns} of {path} failed ({e}).") from e


def file_digest(path: Path) -> str:
    """``sha256:<hex>`` of a file, streamed."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def report_path_for(output: Path) -> Path:
    """Where the report goes: ``clean/patients.parquet`` -> ``clean/patients.protection.json``."""
    return output.with_name(output.name.split(".")[0] + ".protection.json")


def _scan(data: Any, policy: Policy) -> Any:
    try:
        pii = importlib.import_module("bastion.data.pii")
    except ImportError as e:  # detection not installed: say so instead of protecting nothing
        raise ConfigError(
            "PII detection (bastion.data.pii) is unavailable; give an explicit policy and "
            "scan, or install Bastion fully."
        ) from e
    # with the opt-in NER, a text column where only the model finds names is still free text to protect
    return pii.scan_table(data, sample_rows=policy.sample_rows, ner=policy.ner)


def build_plan(
    schema: pa.Schema,
    *,
    policy: Policy,
    scan: Any,
    keyring: Keyring | None,
    dataset: str,
    detector: Callable[[list[str]], list[list[Any]]] | None = None,
    read_columns: Callable[[list[str]], pa.Table] | None = None,
) -> ProtectionPlan:
    """Decide each column's operator (policy column rule, else the scan's entity default) and load keys.

    ``read_columns`` reads whole columns of the input: the names for the table-wide dictionary of the row
    linkage, and the quasi-identifiers when the policy asks for k-anonymity (``min_k``).
    """
    names = list(schema.names)
    missing = [c for c in policy.columns if c not in names]
    if missing:
        raise ConfigError(
            f"The policy names column(s) {missing} that the data does not have; columns are {names}."
        )
    findings = {f.column: f for f in (scan.columns if scan is not None else ())}
    actions: dict[str, ColumnAction] = {}
    for name in names:
        f = findings.get(name)
        entity = getattr(f, "entity", None)
        kind = getattr(f, "kind", "none")
        conf = getattr(f, "confidence", None)
        examples = tuple(getattr(f, "masked_examples", ()) or ())
        if name in policy.columns:
            rule = policy.columns[name]
            spans = rule.scope == "spans" or (
                rule.scope is None
                and kind == "text"
                and rule.operator not in ("keep", "drop", "encrypt", "generalize")
            )
            actions[name] = ColumnAction(
                name, rule, "spans" if spans else "cell", entity, conf, examples, "policy column rule"
            )
        elif kind == "column" and entity:
            actions[name] = ColumnAction(
                name, policy.entity_rule(entity), "cell", entity, conf, examples, f"scan found {entity}"
            )
        elif kind == "text":
            actions[name] = ColumnAction(
                name, Rule("keep"), "spans", None, conf, examples, "free text: spans protected"
            )
        else:
            actions[name] = ColumnAction(name, policy.default, "cell", None, conf, (), "no PII found")
    qis = _quasi_identifiers(names, actions, policy)
    plan = ProtectionPlan(actions=actions, policy=policy, quasi_identifiers=qis)
    if detector is not None:
        plan.detector = detector
    elif policy.ner:
        # the opt-in NER recognizer for names in text: protection and the residual check both use it
        pii = importlib.import_module("bastion.data.pii")
        plan.detector = functools.partial(pii.detect_spans_batch, ner=policy.ner)
    plan.linker = _linker(schema, actions, qis, read_columns)
    if policy.min_k and qis:
        if read_columns is None:
            raise DataError("k-anonymity needs the quasi-identifier columns of the whole table.")
        plan.kanon = _kanon_plan(schema, actions, qis, policy, read_columns(list(qis)))
    ops_used = {a.rule.operator for a in actions.values() if a.scope == "cell"}
    span_ops = {
        policy.text_rule(e, a.rule if a.rule.operator != "keep" else None).operator
        for a in actions.values()
        if a.scope == "spans"
        for e in (*policy.text, *getattr(findings.get(a.column), "spans_found", {}), "PERSON")
    }
    needs_token = bool((ops_used | span_ops) & set(_KEYED))
    if needs_token or "encrypt" in ops_used:
        if keyring is None:
            keyring = project_keyring()
        if needs_token:
            k = keyring.get_or_create("tokenize", TOKEN_SCOPE)
            plan.token_key = (k.key_id, k.material)
        if "encrypt" in ops_used:
            k = keyring.get_or_create("encrypt", dataset)
            plan.encrypt_key = (k.key_id, k.material)
    return plan


def _linker(
    schema: pa.Schema,
    actions: dict[str, ColumnAction],
    qis: tuple[str, ...],
    read_columns: Callable[[list[str]], pa.Table] | None,
) -> RowLinker | None:
    sources = {
        n: a.entity
        for n, a in actions.items()
        if a.entity and a.scope == "cell" and not (a.rule.operator == "keep" and n in qis)
    }
    texts = [n for n, a in actions.items() if a.scope == "spans"]
    cells = [
        n
        for n, a in actions.items()
        if a.scope == "cell"
        and a.rule.operator == "keep"
        and not a.entity
        and n not in qis
        and (pa.types.is_string(schema.field(n).type) or pa.types.is_large_string(schema.field(n).type))
    ]
    if not texts and not cells:
        return None
    person = [n for n, e in sources.items() if e == "PERSON"]
    dictionary = None
    if person and texts and read_columns is not None:
        names_table = read_columns(person)
        dictionary = name_dictionary(v for c in person for v in names_table.column(c).to_pylist()) or None
    linker = RowLinker(sources, [*texts, *cells], dictionary, cell_targets=frozenset(cells))
    return linker if linker else None


def _kanon_plan(
    schema: pa.Schema,
    actions: dict[str, ColumnAction],
    qis: tuple[str, ...],
    policy: Policy,
    table: pa.Table,
) -> KAnonPlan:
    kinds: dict[str, str] = {}
    start: dict[str, str] = {}
    for q in qis:
        a = actions[q]
        kind = qi_kind(q, schema.field(q).type, a.entity)
        op = a.rule.operator if a.scope == "cell" else "keep"
        if op == "generalize":
            to = str(a.rule.options.get("to") or "")
            if not to:
                to = "year" if kind == "date" else "zip3" if kind == "zip" else "band"
            if to == "band":
                kind, to = "category", "raw"  # the operator's bands are the start; labels are categories
        elif op == "keep":
            to = "raw"
        else:  # tokenized, encrypted ...: left as the operator made them
            kind, to = "category", "raw"
        kinds[q] = kind
        start[q] = to
    if any(start[q] == "raw" and kinds[q] == "category" and actions[q].rule.operator == "generalize" for q in qis):
        # banded columns: count classes over the bands the operator writes
        for q in qis:
            if actions[q].rule.operator == "generalize" and kinds[q] == "category":
                a = actions[q]
                banded = ops.generalize_array(
                    table.column(q).combine_chunks(), q, to="band", bands=a.rule.options.get("bands")
                )
                table = table.set_column(table.schema.get_field_index(q), q, banded)
    plan = plan_k_anonymity(
        table,
        kinds,
        start,
        min_k=int(policy.min_k or 1),
        max_suppression=policy.max_suppression,
        hierarchies={q: h for q, h in policy.hierarchies.items() if q in kinds},
    )
    if not plan.ok:
        listed = "; ".join(
            ", ".join(f"{q}={v}" for q, v in c["values"].items()) + f" ({c['rows']} rows)"
            for c in plan.classes_below
        )
        raise PolicyViolation(
            f"k-anonymity with min_k {policy.min_k} cannot be met over {', '.join(qis)} by generalising "
            f"along the hierarchies ({', '.join(f'{q} up to {plan.levels[q]}' for q in qis)}) and suppressing "
            f"at most {policy.max_suppression:.0%} of rows. Classes below {policy.min_k}: {listed}. Declare "
            "coarser hierarchies (protection.k_anonymity.hierarchies), allow more suppression, or drop a "
            "quasi-identifier. Nothing was written."
        )
    return plan


def _quasi_identifiers(names: list[str], actions: dict[str, ColumnAction], policy: Policy) -> tuple[str, ...]:
    dropped = {n for n, a in actions.items() if a.rule.operator == "drop" and a.scope == "cell"}
    if policy.quasi_identifiers is not None:
        for q in policy.quasi_identifiers:
            if q not in names:
                raise ConfigError(f"Quasi-identifier '{q}' is not a column of the data; columns are {names}.")
            if q in dropped:
                raise ConfigError(
                    f"Quasi-identifier '{q}' is dropped by the policy; remove it from "
                    "quasi_identifiers or keep the column."
                )
        return tuple(policy.quasi_identifiers)
    out = [
        n
        for n in names
        if n not in dropped
        and (actions[n].entity in _QI_ENTITIES or n.lower() in DEFAULT_QUASI_IDENTIFIER_NAMES)
    ]
    return tuple(out)


def _report(plan: ProtectionPlan, totals: dict[str, Any], *, source: str, **extra: Any) -> ProtectionReport:
    cols = []
    for a in plan.actions.values():
        cols.append(
            ColumnProtection(
                column=a.column,
                operator=a.rule.operator
                if a.scope == "cell"
                else f"{a.rule.operator}+spans"
                if a.rule.operator != "keep"
                else "spans",
                scope=a.scope,
                entity=a.entity,
                confidence=a.confidence,
                options=dict(a.rule.options),
                key_id=plan.key_id_for(a),
                spans=totals.get("spans", {}).get(a.column, {}),
                linked=totals.get("linked", {}).get(a.column, 0),
                masked_examples=a.masked_examples,
                unreadable_cells=totals.get("unreadable", {}).get(a.column, 0),
                reason=a.reason,
            )
        )
    kan = (
        k_anonymity(
            totals.get("classes", {}),
            plan.quasi_identifiers,
            min_k=plan.policy.min_k,
            suppressed_rows=int(totals.get("suppressed", 0)),
            levels=dict(plan.kanon.levels) if plan.kanon is not None else {},
        )
        if plan.quasi_identifiers
        else None
    )
    key_ids = {}
    if plan.token_key:
        key_ids["tokenize"] = plan.token_key[0]
    if plan.encrypt_key:
        key_ids["encrypt"] = plan.encrypt_key[0]
    return ProtectionReport(
        source=source,
        rows=int(totals.get("rows", 0)),
        columns=tuple(cols),
        k_anonymity=kan,
        key_ids=key_ids,
        policy_source=plan.policy.source,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        residual={c: dict(v) for c, v in totals.get("residual", {}).items() if sum(v.values())},
        linked={c: n for c, n in totals.get("linked", {}).items() if n},
        **extra,
    )


def _timing(totals: Mapping[str, Any]) -> dict[str, float]:
    return {
        "seconds_linkage": round(float(totals.get("seconds_linkage", 0.0)), 3),
        "seconds_batches": round(float(totals.get("seconds_total", 0.0)), 3),
    }


def _to_table(data: pd.DataFrame | pa.Table) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"protect() takes a pandas DataFrame or a pyarrow Table; got {type(data).__name__}.")
    arrays, names = [], []
    for name in data.columns:
        try:
            arrays.append(pa.array(data[name], from_pandas=True))
        except (pa.ArrowException, TypeError, ValueError) as e:
            raise DataError(
                f"Column '{name}' holds values of mixed types ({e}); give it one type (e.g. "
                f"df['{name}'] = df['{name}'].astype(str)) and try again."
            ) from e
        names.append(str(name))
    return pa.Table.from_arrays(arrays, names=names)


def protect(
    data: pd.DataFrame | pa.Table,
    policy: Policy | Mapping[str, Any] | str | Path | None = None,
    *,
    keyring: Keyring | None = None,
    dataset: str = "memory",
    scan: Any = None,
    detector: Callable[[list[str]], list[list[Any]]] | None = None,
) -> tuple[Any, ProtectionReport]:
    """Protect an in-memory table; returns the protected table (same kind as given) and the report.

    Parameters
    ----------
    data
        A pandas DataFrame or a pyarrow Table (never modified).
    policy
        A ``Policy``, the ``protection:`` mapping, a policy file path, or None for the scan's defaults.
    keyring
        Data keys; by default the nearest project's (needed only for tokenize, hash and encrypt).
    dataset
        Name the per-dataset encryption key is kept under.
    """
    pol = _as_policy(policy)
    table = _to_table(data)
    if table.num_rows == 0:
        raise DataError("The table has no rows; nothing to protect.")
    if scan is None:
        scan = _scan(data if isinstance(data, pd.DataFrame) else table.to_pandas(), pol)
    plan = build_plan(
        table.schema,
        policy=pol,
        scan=scan,
        keyring=keyring,
        dataset=dataset,
        detector=detector,
        read_columns=table.select,
    )
    totals: dict[str, Any] = {}
    out_batches = []
    start = time.perf_counter()
    for batch in table.combine_chunks().to_batches(max_chunksize=pol.batch_rows):
        result, partial = plan(batch)
        out_batches.append(result)
        merge_partial(totals, partial)
    out = pa.Table.from_batches(out_batches, schema=out_batches[0].schema if out_batches else None)
    out = out.replace_schema_metadata(plan.metadata(table.schema))
    report = _report(
        plan,
        totals,
        source="<memory>",
        engine="memory",
        stats={"seconds": round(time.perf_counter() - start, 3), **_timing(totals)},
    )
    log.info(
        "protected %d rows in memory (%d columns changed)",
        report.rows,
        sum(1 for c in report.columns if c.operator != "keep"),
    )
    if isinstance(data, pd.DataFrame):
        frame = out.to_pandas()
        frame.attrs["bastion.protection"] = plan.metadata(table.schema)
        return frame, report
    return out, report


def protect_file(
    source: Path | str,
    output: Path | str,
    *,
    policy: Policy | Mapping[str, Any] | str | Path | None = None,
    keyring: Keyring | None = None,
    dataset: str | None = None,
    engine: Any = None,
    scan: Any = None,
    detector: Callable[[list[str]], list[list[Any]]] | None = None,
    progress: Callable[[int, int], None] | None = None,
    write_report: bool = True,
) -> ProtectionReport:
    """Stream ``source`` (Parquet or CSV) through the protection operators into Parquet at ``output``.

    The input is only read. The output is written to a temporary file and renamed when complete; the report
    goes to ``<output stem>.protection.json`` unless ``write_report`` is false.
    """
    from bastion.engine import get_engine, open_source

    src, out = Path(source), Path(output)
    if src.resolve() == out.resolve():
        raise DataError(
            f"The output {out} is the input file; protection never modifies its input. Choose "
            "another output path."
        )
    pol = _as_policy(policy)
    table_source = open_source(src)  # validates format and readability before any work
    if table_source.rows == 0:
        raise DataError(f"Input file {src} has no rows; nothing to protect.")
    digest = file_digest(src)
    if scan is None:
        scan = _scan(str(src), pol)
    name = dataset or src.name.split(".")[0]
    plan = build_plan(
        table_source.schema,
        policy=pol,
        scan=scan,
        keyring=keyring,
        dataset=name,
        detector=detector,
        read_columns=lambda cols: read_columns(src, cols),
    )
    totals: dict[str, Any] = {}
    eng = engine or get_engine("local")
    start = time.perf_counter()
    try:
        stats = eng.map_batches(
            src,
            plan,
            out,
            batch_rows=pol.batch_rows,
            metadata=plan.metadata(table_source.schema),
            on_result=lambda p: merge_partial(totals, p),
            progress=progress,
        )
    finally:
        if engine is None:
            eng.close()
    seconds = time.perf_counter() - start
    report = _report(
        plan,
        totals,
        source=str(src),
        source_digest=digest,
        output=str(out),
        engine=stats.engine,
        stats={
            **stats.to_dict(),
            "seconds": round(seconds, 3),
            "mb_per_s": round(stats.bytes_in / 1e6 / seconds, 2) if seconds else None,
            **_timing(totals),
        },
    )
    if write_report:
        import json

        report_path_for(out).write_text(
            json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
    log.info("protected %s -> %s: %d rows, engine %s", src, out, report.rows, stats.engine)
    return report
