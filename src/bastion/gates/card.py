"""Model cards: Markdown/HTML for people, and a CycloneDX 1.6 ML-BOM (with a ``modelCard``) for machines.

cyclonedx-python-lib builds the BOM; it has no model-card class, so Bastion adds ``modelCard`` to the JSON
and validates the whole document offline against the library's bundled 1.6 schema.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

from bastion.errors import VerificationError

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = ["card_data", "cyclonedx_bom", "render_html", "render_markdown", "validate_bom"]


def _last(project: ProjectHandle, ref: str, kind: str) -> dict[str, Any] | None:
    docs = project.attachments(ref, kind)
    return docs[-1] if docs else None


def card_data(project: ProjectHandle, ref: str) -> dict[str, Any]:
    """Everything a card shows, gathered from the registry (version, lineage, gate, scan, environment)."""
    mv = project.get_model(ref)
    gate = _last(project, mv.ref, "gate")
    scan = _last(project, mv.ref, "scan")
    try:
        env = project.environment(mv.ref) or {}
    except Exception:  # an unreadable environment is shown as missing, not fatal for the card
        env = {}
    datasets = []
    for dref in mv.datasets:
        try:
            dv = project.get_dataset(dref)
            datasets.append({"ref": dv.ref, "digest": dv.digest, "rows": dv.rows, "description": dv.description})
        except Exception:
            datasets.append({"ref": dref, "digest": None, "rows": None, "description": "(not found)"})
    flavor = _last(project, mv.ref, "flavor") or {}
    return {"model": mv.to_dict(), "gate": gate, "scan": scan, "environment": env, "datasets": datasets,
            "flavor": flavor}


def _requirements(d: dict[str, Any]) -> list[tuple[str, str]]:
    """``(distribution, version)`` of the framework requirements recorded at registration."""
    out = []
    for req in (d.get("flavor") or {}).get("requirements") or []:
        name, _, version = str(req).partition("==")
        if name:
            out.append((name, version))
    return out


def _check(gate: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    for c in (gate or {}).get("checks", []):
        if c["name"] == name:
            found: dict[str, Any] = c
            return found
    return None


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "" if v is None else str(v)


def render_markdown(project: ProjectHandle, ref: str) -> str:
    """The model card as Markdown."""
    d = card_data(project, ref)
    m, gate = d["model"], d["gate"]
    out = [f"# Model card: {m['ref']}", ""]
    out += ["## Intended use", "", m.get("description") or "_No description recorded._", ""]
    out += ["## Model", "", f"- Digest: `{m['digest']}`", f"- Framework: {m['framework']} ({m['flavor']})",
            f"- Created: {m['created_at']} by {m['created_by']}"]
    if d.get("flavor"):
        from bastion.flavors import signature_summary

        fl = d["flavor"]
        out += [f"- Task: {fl.get('task') or 'unknown'}",
                f"- Input signature: {signature_summary(fl.get('signature'))}",
                f"- Requirements: {', '.join(fl.get('requirements') or []) or 'none recorded'}"]
    if m.get("parent"):
        out.append(f"- Derived from: {m['parent']}")
    out += ["", "## Training data", ""]
    out += [f"- {x['ref']} ({x['rows']} rows, `{x['digest']}`)" for x in d["datasets"]] or ["_No lineage recorded._"]
    out += ["", "## Metrics", ""]
    perf = _check(gate, "performance")
    metrics = {**m.get("metrics", {}), **((perf or {}).get("measured") or {})}
    out += ["| metric | value |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in metrics.items()]
    out += ["", "## Gate", ""]
    if gate:
        out += [f"Gate {'passed' if gate['passed'] else 'FAILED'} under policy {gate['policy']['name']} "
                f"v{gate['policy']['version']} (`{gate['policy']['digest']}`) at {gate['finished_at']}.", "",
                "| check | passed | required |", "|---|---|---|"]
        out += [f"| {c['name']} | {c['passed']} | {c['required']} |" for c in gate["checks"]]
    else:
        out.append("_No gate has run on this version._")
    fair = _check(gate, "fairness")
    out += ["", "## Fairness per group", ""]
    if fair:
        for g in fair["evidence"].get("groupings", []):
            out += [f"### {g['name']}", "", "| group | count | selection rate | TPR | FPR | accuracy | small |",
                    "|---|---|---|---|---|---|---|"]
            for grp in g["groups"]:
                label = " / ".join(str(v) for v in grp["group"].values())
                out.append(f"| {label} | {grp['count']} | {_fmt(grp['selection_rate'])} | {_fmt(grp['tpr'])} | "
                           f"{_fmt(grp['fpr'])} | {_fmt(grp['accuracy'])} | {'yes' if grp['small'] else ''} |")
            out += [""] + [f"- {k}: {_fmt(v)}" for k, v in g["disparities"].items() if not k.endswith("_mean")] + [""]
    else:
        out.append("_No fairness results._")
    for name, title in (("robustness", "Robustness"), ("privacy", "Privacy")):
        c = _check(gate, name)
        out += ["", f"## {title}", ""]
        out += [f"- {k}: {_fmt(v)}" for k, v in (c or {}).get("measured", {}).items()] or ["_Not assessed._"]
    out += ["", "## Limitations", ""]
    lim = []
    if fair:
        for g in fair["evidence"].get("groupings", []):
            if g["small_groups"]:
                lim.append(f"Groups of {g['name']} under {fair['evidence']['min_group_size']} rows "
                           f"({len(g['small_groups'])}) have unreliable rates.")
    if not gate or not gate["passed"]:
        lim.append("This version has not passed its gate; do not deploy it.")
    lim.append("Measured on the evaluation data named in the gate; other populations may differ.")
    out += [f"- {x}" for x in lim]
    pk = d["environment"].get("packages") or {}
    out += ["", "## Training environment", "", f"Python {d['environment'].get('python', '?')}, {len(pk)} packages."]
    return "\n".join(out) + "\n"


def render_html(project: ProjectHandle, ref: str) -> str:
    """The model card as a standalone HTML page (the Markdown, rendered simply; no external assets)."""
    md = render_markdown(project, ref)
    body: list[str] = []
    in_table = False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= {"-"} for c in cells):
                continue
            if not in_table:
                body.append("<table>")
                in_table = True
            body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("### "):
            body.append(f"<h3>{html.escape(line[4:])}</h3>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("- "):
            body.append(f"<li>{html.escape(line[2:])}</li>")
        elif line:
            body.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        body.append("</table>")
    style = "body{font-family:system-ui,sans-serif;margin:2em}td{border:1px solid #ccc;padding:3px 6px}" \
            "table{border-collapse:collapse}"
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Model card</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def _model_card(d: dict[str, Any]) -> dict[str, Any]:
    m, gate = d["model"], d["gate"]
    card: dict[str, Any] = {
        "bom-ref": f"model-card:{m['ref']}",
        "modelParameters": {
            "task": (d.get("flavor") or {}).get("task") or (
                "classification" if (m.get("framework") or "").startswith(("sklearn", "scikit-learn")) else "unknown"),
            "datasets": [{"ref": f"dataset:{x['ref']}"} for x in d["datasets"]],
        },
    }
    metrics = []
    perf = _check(gate, "performance")
    for k, v in ((perf or {}).get("measured") or m.get("metrics") or {}).items():
        if isinstance(v, (int, float)):
            metrics.append({"type": str(k), "value": f"{v:.6g}"})
    card["quantitativeAnalysis"] = {"performanceMetrics": metrics}
    fair = _check(gate, "fairness")
    assessments = []
    if fair:
        for g in fair["evidence"].get("groupings", []):
            dpd = g["disparities"].get("demographic_parity_difference")
            eod = g["disparities"].get("equalized_odds_difference")
            assessments.append({
                "groupAtRisk": g["name"],
                "benefits": "Per-group rates measured by the Bastion gate.",
                "harms": f"demographic parity difference {dpd if dpd is None else f'{dpd:.4f}'}, "
                         f"equalized odds difference {eod if eod is None else f'{eod:.4f}'}",
                "mitigationStrategy": (f"Derived from {m['parent']} by fairness mitigation."
                                       if m.get("parent") else "None recorded."),
            })
    card["considerations"] = {
        "useCases": [m.get("description") or "Not stated."],
        "fairnessAssessments": assessments,
    }
    return card


def cyclonedx_bom(project: ProjectHandle, ref: str, *, validate: bool = True) -> dict[str, Any]:
    """The CycloneDX 1.6 ML-BOM of a model version, as a JSON-ready dict (validated unless told not to)."""
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    d = card_data(project, ref)
    m = d["model"]
    bom = Bom()
    hexd = m["digest"].split(":", 1)[-1]
    model = Component(type=ComponentType.MACHINE_LEARNING_MODEL, name=m["name"], version=str(m["version"]),
                      bom_ref=f"model:{m['ref']}", description=m.get("description") or None,
                      hashes=[HashType(alg=HashAlgorithm.SHA_256, content=hexd)],
                      properties=[Property(name="bastion:flavor", value=str(m["flavor"])),
                                  Property(name="bastion:framework", value=str(m["framework"]))])
    bom.metadata.component = model
    deps = []
    frameworks = set()
    purls: dict[str, str] = {}  # every package component, frameworks included, for the vulnerabilities' refs
    for name, version in _requirements(d):  # what loads the model: a framework component, named and versioned
        purl = PackageURL(type="pypi", name=name.lower(), version=version or None)
        comp = Component(type=ComponentType.FRAMEWORK, name=name, version=version or None, purl=purl,
                         bom_ref=str(purl))
        bom.components.add(comp)
        deps.append(comp)
        frameworks.add(name.lower())
        purls[_pep503(name)] = str(purl)
    for x in d["datasets"]:
        comp = Component(type=ComponentType.DATA, name=x["ref"], bom_ref=f"dataset:{x['ref']}",
                         hashes=[HashType(alg=HashAlgorithm.SHA_256, content=x["digest"].split(":", 1)[-1])]
                         if x.get("digest") else [])
        bom.components.add(comp)
        deps.append(comp)
    packages = d["environment"].get("packages") or {}
    items = packages.items() if isinstance(packages, dict) else ((p.get("name"), p.get("version")) for p in packages)
    for name, version in sorted(items, key=lambda kv: str(kv[0]).lower()):
        if not name or str(name).lower() in frameworks:
            continue
        purl = PackageURL(type="pypi", name=str(name).lower(), version=str(version) if version else None)
        purls[_pep503(str(name))] = str(purl)
        comp = Component(type=ComponentType.LIBRARY, name=str(name), version=str(version) if version else None,
                         purl=purl, bom_ref=str(purl))
        bom.components.add(comp)
        deps.append(comp)
    bom.register_dependency(model, deps)
    doc: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    doc["metadata"]["component"]["modelCard"] = _model_card(d)
    vulns = _vulnerabilities(project, m["name"], int(m["version"]), purls)
    if vulns:
        doc["vulnerabilities"] = vulns
    if validate:
        validate_bom(doc)
    return doc


def _pep503(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


_CDX_METHOD = {"CVSS:3.0": "CVSSv3", "CVSS:3.1": "CVSSv31", "CVSS:4.0": "CVSSv4"}


def _vulnerabilities(project: ProjectHandle, name: str, version: int, purls: dict[str, str]) -> list[dict[str, Any]]:
    """CycloneDX ``vulnerabilities`` from the version's last stored advisory check (``bastion vulns check``)."""
    try:
        from bastion.vulns.check import stored_results
    except ImportError:
        return []
    matches = stored_results(project, [(name, version)]).get((name, version)) or []
    out: list[dict[str, Any]] = []
    for i, mt in enumerate(matches):
        rating: dict[str, Any] = {"severity": mt.severity, "source": {"name": "OSV"}}
        if mt.score is not None:
            rating["score"] = mt.score
        if mt.vector:
            rating["vector"] = mt.vector
            rating["method"] = _CDX_METHOD.get(mt.vector.split("/", 1)[0], "other")
        entry: dict[str, Any] = {
            "bom-ref": f"vulnerability:{i}:{mt.id}",
            "id": mt.id,
            "source": {"name": "OSV", "url": f"https://osv.dev/vulnerability/{mt.id}"},
            "ratings": [rating],
            "affects": [{"ref": purls.get(mt.package, f"pkg:pypi/{mt.package}@{mt.installed}")}],
        }
        if mt.aliases:
            entry["references"] = [{"id": a, "source": {"name": "OSV"}} for a in mt.aliases]
        if mt.summary:
            entry["description"] = mt.summary
        if mt.fixed:
            entry["recommendation"] = f"Upgrade {mt.package} to {mt.fixed} or later and register a new version."
        out.append(entry)
    return out


def validate_bom(doc: dict[str, Any]) -> None:
    """Validate a BOM against the CycloneDX 1.6 JSON schema bundled with cyclonedx-python-lib (offline).

    Raises
    ------
    VerificationError
        The document does not conform; the message names the failing field.
    """
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    err = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc))
    if err is not None:
        first = str(err).strip().splitlines()[0]
        raise VerificationError(f"The ML-BOM is not valid CycloneDX 1.6: {first}")
