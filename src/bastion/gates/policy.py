"""The gate policy file (``bastion-policy.yaml``): a pydantic model, a loader and its digest.

Errors name the YAML line of the offending field, so a reviewer can fix the file without guessing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from bastion.errors import ConfigError
from bastion.policy_file import (
    POLICY_FILE,
    PolicyDocument,
    document_from_mapping,
    parse_text,
    read_policy_file,
    register_section,
)

if TYPE_CHECKING:
    from bastion.protocols import ProjectHandle

__all__ = [
    "POLICY_FILE",
    "AliasRule",
    "CheckSpec",
    "DiversitySpec",
    "FairnessSpec",
    "FairnessThresholds",
    "PerformanceSpec",
    "PerformanceThresholds",
    "Policy",
    "PrivacySpec",
    "RobustnessSpec",
    "SupplyChainSpec",
    "find_project_policy",
    "load_policy",
    "policy_digest",
]

Unit = Annotated[float, Field(ge=0.0, le=1.0)]
NonNeg = Annotated[float, Field(ge=0.0)]


class _Strict(BaseModel):
    # NaN passes no bound check and would make every comparison with it false: never a valid setting.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class CheckSpec(_Strict):
    """Settings every check has: whether a failure fails the gate."""

    required: bool = True


class PerformanceThresholds(_Strict):
    """Lower bounds on scores (higher is better) and upper bounds on losses."""

    accuracy: Unit | None = None
    balanced_accuracy: Unit | None = None
    roc_auc: Unit | None = None
    f1: Unit | None = None
    precision: Unit | None = None
    recall: Unit | None = None
    log_loss: NonNeg | None = None
    rmse: NonNeg | None = None
    mae: NonNeg | None = None
    r2: Annotated[float, Field(le=1.0)] | None = None


class AliasComparison(_Strict):
    """Compare with the version currently under ``alias``: no metric may drop by more than ``max_drop``."""

    alias: str
    max_drop: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    metrics: list[str] = Field(default_factory=lambda: ["accuracy"])


class PerformanceSpec(CheckSpec):
    """Accuracy-type metrics of the model on the holdout data."""

    thresholds: PerformanceThresholds = PerformanceThresholds()
    no_worse_than: AliasComparison | None = None


class FairnessThresholds(_Strict):
    """Upper bounds on differences and lower bounds on ratios (all in [0, 1])."""

    demographic_parity_difference: Unit | None = None
    demographic_parity_ratio: Unit | None = None
    equalized_odds_difference: Unit | None = None
    equalized_odds_ratio: Unit | None = None
    equalized_odds_difference_mean: Unit | None = None
    equalized_odds_ratio_mean: Unit | None = None
    equal_opportunity_difference: Unit | None = None
    equal_opportunity_ratio: Unit | None = None
    demographic_parity_difference_to_overall: Unit | None = None
    demographic_parity_ratio_to_overall: Unit | None = None
    equalized_odds_difference_to_overall: Unit | None = None
    equalized_odds_ratio_to_overall: Unit | None = None
    equal_opportunity_difference_to_overall: Unit | None = None
    equal_opportunity_ratio_to_overall: Unit | None = None


class FairnessSpec(CheckSpec):
    """Group fairness of the predictions for each sensitive attribute and each intersection."""

    thresholds: FairnessThresholds = FairnessThresholds()
    # Groups below the policy's min_group_size are always reported; "exclude" keeps them out of the
    # threshold comparison (their rates are too noisy to gate on), "include" gates on every group.
    small_groups: Literal["exclude", "include"] = "exclude"


class DiversitySpec(CheckSpec):
    """Representation of each sensitive group in the training dataset version."""

    min_share: Unit = 0.0
    max_imbalance_ratio: Annotated[float, Field(ge=1.0)] | None = None
    expected_groups: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("expected_groups", mode="before")
    @classmethod
    def _stringify(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: [str(x) for x in vals] if isinstance(vals, list) else vals for k, vals in v.items()}
        return v


class RobustnessSpec(CheckSpec):
    """HopSkipJump evasion on a sample plus prediction stability under feature noise."""

    sample_size: Annotated[int, Field(ge=1, le=10_000)] = 20
    query_budget: Annotated[int, Field(ge=20, le=1_000_000)] = 2_000
    epsilon: Annotated[float, Field(gt=0.0)] = 0.5
    max_attack_success_rate: Unit = 0.5
    noise_scale: Annotated[float, Field(gt=0.0, le=10.0)] = 0.1
    min_stability: Unit = 0.9
    stability_sample_size: Annotated[int, Field(ge=1, le=1_000_000)] = 2_000


class PrivacySpec(CheckSpec):
    """Black-box membership inference (ART) with a scikit-learn attack model."""

    sample_size: Annotated[int, Field(ge=20, le=1_000_000)] = 2_000
    attack_model: Literal["rf", "gb"] = "rf"
    max_auc: Annotated[float, Field(ge=0.5, le=1.0)] = 0.6


class SupplyChainSpec(CheckSpec):
    """Recorded scan, stored digest, recorded dependencies and (optionally) a valid signature."""

    require_clean_scan: bool = True
    require_dependencies: bool = True
    require_signature: bool = False


class AliasRule(_Strict):
    """What a version needs before it may take an alias."""

    requires: list[Literal["gate", "signature", "scan", "vulnerabilities"]] = Field(default_factory=list)
    # Roll the alias back to the newest clean, unaffected version it held, on a matching advisory
    # (above the `checks: vulnerabilities:` threshold) or a new finding of `bastion model rescan`.
    rollback_on: list[Literal["vulnerability", "rescan_finding"]] = Field(default_factory=list)
    # Actors (BASTION_USER / OS user names) allowed to override a refusal with --force --reason.
    force_allowed: list[str] = Field(default_factory=list)
    # Path (relative to the project root) of the policy the gate must have run with; default: this file.
    policy: str | None = None


class RevealRole(_Strict):
    """Who may reveal (detokenize/decrypt) which columns in one role; ``"*"`` means any."""

    # Actors (BASTION_USER / OS user names) who may act in this role.
    actors: list[str] = Field(min_length=1)
    # Protected columns this role may reveal.
    columns: list[str] = Field(min_length=1)


BUILTIN_SPECS: dict[str, type[CheckSpec]] = {
    "performance": PerformanceSpec,
    "fairness": FairnessSpec,
    "diversity": DiversitySpec,
    "robustness": RobustnessSpec,
    "privacy": PrivacySpec,
    "supply_chain": SupplyChainSpec,
}


class Policy(_Strict):
    """A validated ``bastion-policy.yaml``."""

    version: Annotated[int, Field(ge=1)]
    name: str = "default"
    target: str | None = None
    positive_label: str | int | bool | None = None
    sensitive_attributes: list[str] = Field(default_factory=list)
    intersections: list[Annotated[list[str], Field(min_length=2)]] = Field(default_factory=list)
    min_group_size: Annotated[int, Field(ge=0)] = 30
    seed: int = 0
    checks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    aliases: dict[str, AliasRule] = Field(default_factory=dict)
    # `bastion data reveal --role R`: when set, only the roles listed here, for their actors and columns.
    reveal: dict[str, RevealRole] = Field(default_factory=dict)

    _lines: dict[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)
    _source: str = PrivateAttr(default="<policy>")

    @property
    def source(self) -> str:
        """Where the policy came from (file path or ``<policy>``)."""
        return self._source

    def line_of(self, *path: str | int) -> int | None:
        """The YAML line (1-based) of the deepest known node on ``path``, if the policy came from YAML."""
        for n in range(len(path), -1, -1):
            if path[:n] in self._lines:
                return self._lines[path[:n]]
        return None

    def where(self, *path: str | int) -> str:
        """``'FILE, line N (a.b.c)'`` for error messages."""
        line = self.line_of(*path)
        dotted = ".".join(str(p) for p in path)
        return f"{self._source}, line {line} ({dotted})" if line else f"{self._source} ({dotted})"

    def groupings(self) -> list[tuple[str, ...]]:
        """Every attribute alone, then each declared intersection."""
        out: list[tuple[str, ...]] = [(a,) for a in self.sensitive_attributes]
        out += [tuple(i) for i in self.intersections]
        return out

    def spec(self, check: str) -> CheckSpec:
        """The validated settings of ``check`` (built-in model, or the plugin's ``spec_model``)."""
        from bastion.gates.checks import spec_model_for

        spec: CheckSpec = spec_model_for(check).model_validate(self.checks.get(check) or {})
        return spec

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the canonical JSON of the validated policy (comments/formatting do not count)."""
        return policy_digest(self)


def policy_digest(policy: Policy) -> str:
    """The digest recorded in gate attestations and compared at promotion time."""
    # `reveal` governs data access, not models: changing it must not invalidate recorded gate runs
    # `aliases.*.rollback_on` says what monitoring does after promotion: it does not change what a gate measured
    doc = policy.model_dump(mode="json", exclude={"reveal": True, "aliases": {"__all__": {"rollback_on"}}})
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _nearest_line(lines: dict[tuple[str | int, ...], int], loc: tuple[str | int, ...]) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _fmt_errors(
    err: ValidationError, lines: dict[tuple[str | int, ...], int], source: str, prefix: tuple[str, ...] = ()
) -> str:
    parts = []
    for e in err.errors():
        loc = (*prefix, *e["loc"])
        line = _nearest_line(lines, loc)
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        where = f"line {line}, " if line else ""
        got = e.get("input")
        got_s = "" if e["type"] in {"missing"} or isinstance(got, dict) else f"; got {got!r}"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{source}: {where}'{dotted}': {msg}{got_s}.")
    return "\n".join(parts)


_GATE_KEYS = frozenset(set(Policy.model_fields) - {"reveal"})
_REVEAL_KEYS = frozenset({"reveal"})


def _gate_section(doc: PolicyDocument) -> Policy:
    """Validate the gate's top-level keys of a policy document (``reveal`` rides along, owned by reveal)."""
    data = doc.subset(_GATE_KEYS | _REVEAL_KEYS)
    lines = dict(doc.lines)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_fmt_errors(e, lines, doc.source)) from e
    policy._lines = lines
    policy._source = doc.source
    _check_semantics(policy, data)
    return policy


def _reveal_section(doc: PolicyDocument) -> dict[str, RevealRole]:
    """Validate the ``reveal:`` section (who may reveal which protected columns)."""
    raw = doc.get("reveal")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{doc.source}: 'reveal' must be a mapping of role to {{actors, columns}}.")
    out: dict[str, RevealRole] = {}
    for role, rule in raw.items():
        try:
            out[str(role)] = RevealRole.model_validate(rule)
        except ValidationError as e:
            raise ConfigError(_fmt_errors(e, dict(doc.lines), doc.source, ("reveal", str(role)))) from e
    return out


register_section("gates", _GATE_KEYS, _gate_section)
register_section("reveal", _REVEAL_KEYS, _reveal_section)


def load_policy(source: str | Path | dict[str, Any] | Policy) -> Policy:
    """Parse and validate a policy from a YAML file, YAML text, a dict or an existing ``Policy``.

    The file is read through :mod:`bastion.policy_file` (one reader for every section); this returns the
    gate's part. Other stages' sections (``protection``, ``monitoring`` …) are validated by their owners.

    Raises
    ------
    ConfigError
        The file is missing, not YAML, has an unknown section, or a field is unknown, mistyped or out of
        range (the message names the line and the field).
    """
    if isinstance(source, Policy):
        return source
    if isinstance(source, dict):
        doc = document_from_mapping(source)
    elif isinstance(source, Path) or (isinstance(source, str) and "\n" not in source):
        doc = read_policy_file(source)
    else:
        doc = parse_text(str(source))
    parsed = doc.parsed.get("gates")
    if isinstance(parsed, Policy):
        return parsed
    return _gate_section(doc)  # no gate keys at all: report what is missing ('version')


def _check_semantics(policy: Policy, data: dict[str, Any]) -> None:
    from bastion.gates.checks import available_checks, spec_model_for

    known = available_checks()
    for check, settings in policy.checks.items():
        if check not in known:
            raise ConfigError(
                f"{policy.where('checks', check)}: unknown check '{check}'. Known checks: {', '.join(sorted(known))} "
                "(plugins register more under the 'bastion.checks' entry-point group)."
            )
        if settings is not None and not isinstance(settings, dict):
            raise ConfigError(f"{policy.where('checks', check)}: settings of check '{check}' must be a mapping.")
        try:
            spec_model_for(check).model_validate(settings or {})
        except ValidationError as e:
            raise ConfigError(_fmt_errors(e, policy._lines, policy._source, ("checks", check))) from e
    attrs = set(policy.sensitive_attributes)
    for i, inter in enumerate(policy.intersections):
        for j, a in enumerate(inter):
            if a not in attrs:
                raise ConfigError(
                    f"{policy.where('intersections', i, j)}: intersection attribute '{a}' is not one of "
                    f"sensitive_attributes {sorted(attrs)}."
                )
    for check in ("fairness", "diversity"):
        if check in policy.checks and not attrs:
            raise ConfigError(
                f"{policy.where('checks', check)}: check '{check}' needs 'sensitive_attributes' (a list of columns)."
            )
    div = policy.checks.get("diversity") or {}
    for attr in (div.get("expected_groups") or {}):
        if attr not in attrs:
            raise ConfigError(
                f"{policy.where('checks', 'diversity', 'expected_groups', attr)}: '{attr}' is not one of "
                f"sensitive_attributes {sorted(attrs)}."
            )


def find_project_policy(project: ProjectHandle) -> Path | None:
    """The project's ``bastion-policy.yaml`` (at the project root), if there is one."""
    root = Path(project.settings.root)
    path = root / POLICY_FILE
    return path if path.is_file() else None
