"""The ``monitoring:`` section of ``bastion-policy.yaml``, parsed strictly with pydantic.

Unknown keys and malformed values are a ``ConfigError`` naming the field; defaults are documented
in ``docs/monitoring.md``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bastion.errors import ConfigError
from bastion.monitor.sinks import SinkConfig, parse_sink_config
from bastion.monitor.sinks.webhook import WebhookSinkConfig
from bastion.policy_file import POLICY_FILE, PolicyDocument, read_policy_file, register_section

__all__ = [
    "POLICY_FILE",
    "AlertRule",
    "AlertsConfig",
    "AnomalyConfig",
    "AttacksConfig",
    "ColumnDriftConfig",
    "DriftConfig",
    "ExtractionRule",
    "FailureBurstRule",
    "MonitoringConfig",
    "PerformanceConfig",
    "ProbingRule",
    "RollbackConfig",
    "WebhookConfig",
    "load_monitoring_config",
    "parse_monitoring_config",
]

Signal = Literal["data_drift", "prediction_drift", "performance", "anomaly", "attack"]
_TESTS = {"ks", "wasserstein", "psi", "chi2", "js"}


class _Strict(BaseModel):
    # NaN or an infinity as a threshold would silently switch a rule off (every comparison false).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=False)


class ColumnDriftConfig(_Strict):
    """Per-column override: which test decides, at which threshold, or skip the column."""

    test: str | None = None
    threshold: float | None = Field(default=None, ge=0)
    kind: Literal["numeric", "categorical"] | None = None
    ignore: bool = False

    @field_validator("test")
    @classmethod
    def _known_test(cls, v: str | None) -> str | None:
        if v is not None and v not in _TESTS:
            raise ValueError(f"unknown drift test {v!r}; expected one of {sorted(_TESTS)}")
        return v


class DriftConfig(_Strict):
    """How drift verdicts are made.

    ``verdict``: ``effect`` (effect size vs threshold), ``p_value`` (adjusted p-value < alpha) or
    ``auto`` (p-value when either side has at most ``small_sample`` rows, where effect sizes are
    noise; effect size otherwise).
    """

    verdict: Literal["auto", "effect", "p_value"] = "auto"
    small_sample: int = Field(default=1000, ge=0)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    multiple_testing: Literal["bh", "bonferroni", "none"] = "bh"
    numeric_test: Literal["wasserstein", "psi", "ks"] = "wasserstein"
    categorical_test: Literal["js", "psi", "chi2"] = "js"
    thresholds: dict[str, float] = Field(
        default_factory=lambda: {"wasserstein": 0.1, "js": 0.1, "psi": 0.2, "ks": 0.05, "chi2": 0.05}
    )
    psi_bins: int = Field(default=10, ge=2, le=1000)
    missing_rate_threshold: float = Field(default=0.1, ge=0, le=1)
    new_category_share: float = Field(default=0.01, ge=0, le=1)
    categorical_max_distinct: int = Field(default=10, ge=1)
    dataset_drift_share: float = Field(default=0.0, ge=0, le=1)
    columns: dict[str, ColumnDriftConfig] = Field(default_factory=dict)

    @field_validator("thresholds")
    @classmethod
    def _known_thresholds(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = set(v) - _TESTS
        if unknown:
            raise ValueError(f"thresholds for unknown tests {sorted(unknown)}; expected {sorted(_TESTS)}")
        for test, t in v.items():
            if test in ("ks", "chi2") and not 0.0 < t < 1.0:
                raise ValueError(f"threshold of {test} is a significance level: give a number in (0, 1); got {t}")
            if not (t >= 0.0 and math.isfinite(t)):
                raise ValueError(f"threshold of {test} must be a finite, non-negative number; got {t}")
        defaults = {"wasserstein": 0.1, "js": 0.1, "psi": 0.2, "ks": 0.05, "chi2": 0.05}
        return {**defaults, **v}


class PerformanceConfig(_Strict):
    min_labels: int = Field(default=30, ge=1)
    sensitive: list[str] = Field(default_factory=list)
    # Alert when a metric falls below this floor (or rises above for error metrics).
    floors: dict[str, float] = Field(default_factory=dict)
    positive_label: str | None = None

    @field_validator("floors")
    @classmethod
    def _finite_floors(cls, v: dict[str, float]) -> dict[str, float]:
        bad = sorted(k for k, x in v.items() if not math.isfinite(x))
        if bad:
            raise ValueError(f"floors must be finite numbers; {bad} are not")
        return v


class AnomalyConfig(_Strict):
    enabled: bool = True
    contamination: float = Field(default=0.01, gt=0, le=0.5)
    max_share: float = Field(default=0.05, gt=0, le=1)
    n_estimators: int = Field(default=100, ge=10, le=2000)
    max_training_rows: int = Field(default=100_000, ge=100)


class ExtractionRule(_Strict):
    enabled: bool = True
    min_queries: int = Field(default=200, ge=1)
    volume_ratio: float = Field(default=10.0, gt=1)
    diversity_ratio: float = Field(default=10.0, gt=1)


class ProbingRule(_Strict):
    enabled: bool = True
    max_distance: float = Field(default=0.05, gt=0)
    min_near_duplicates: int = Field(default=20, ge=2)
    min_flips: int = Field(default=3, ge=1)
    boundary_band: float = Field(default=0.1, gt=0, le=0.5)
    min_boundary_share: float = Field(default=0.3, ge=0, le=1)
    # Each query is compared with the closest of this many queries of the key before it, so decoy
    # queries interleaved between probes do not break the chain of near-duplicates.
    lookback: int = Field(default=4, ge=1, le=64)


class FailureBurstRule(_Strict):
    enabled: bool = True
    invalid: int = Field(default=20, ge=1)
    unauthorized: int = Field(default=10, ge=1)
    rate_limited: int = Field(default=50, ge=1)
    min_share: float = Field(default=0.5, ge=0, le=1)


class AttacksConfig(_Strict):
    extraction: ExtractionRule = Field(default_factory=ExtractionRule)
    probing: ProbingRule = Field(default_factory=ProbingRule)
    failures: FailureBurstRule = Field(default_factory=FailureBurstRule)


class WebhookConfig(_Strict):
    url: str
    secret_env: str = "BASTION_WEBHOOK_SECRET"  # noqa: S105 - the name of a variable, not a secret
    retries: int = Field(default=4, ge=0, le=20)
    backoff: float = Field(default=0.5, ge=0, le=60)
    timeout: float = Field(default=5.0, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must start with http:// or https://; got {v!r}")
        return v


class RollbackConfig(_Strict):
    enabled: bool = False
    alias: str = "production"
    on: list[Signal] = Field(default_factory=lambda: list[Signal](["data_drift", "performance"]))
    min_severity: Literal["warning", "critical"] = "critical"


class AlertRule(_Strict):
    """One alert rule: which monitoring signal raises an alert and how severe it is."""

    name: str
    when: Literal["data_drift", "prediction_drift", "performance", "anomaly", "attack"]
    severity: Literal["info", "warning", "critical"] = "warning"
    min_drifted_features: int = Field(default=1, ge=1)


class AlertsConfig(_Strict):
    rules: list[AlertRule] = Field(
        default_factory=lambda: [
            AlertRule(name="data-drift", when="data_drift", severity="critical"),
            AlertRule(name="prediction-drift", when="prediction_drift", severity="warning"),
            AlertRule(name="performance-drop", when="performance", severity="critical"),
            AlertRule(name="input-anomalies", when="anomaly", severity="warning"),
            AlertRule(name="attack-pattern", when="attack", severity="critical"),
        ]
    )
    webhook: WebhookConfig | None = None  # shorthand for one sink of type "webhook"
    sinks: list[SinkConfig] = Field(default_factory=list)  # see bastion.monitor.sinks
    log: str | None = None  # a local JSON-lines copy of the alert log (the log itself is in the project database)
    rollback: RollbackConfig = Field(default_factory=RollbackConfig)

    @field_validator("sinks", mode="before")
    @classmethod
    def _sink_models(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return v
        return [parse_sink_config(item) for item in v]

    @model_validator(mode="after")
    def _unique_names(self) -> AlertsConfig:
        names = [r.name for r in self.rules]
        if len(names) != len(set(names)):
            raise ValueError(f"alert rule names must be unique; got {names}")
        dests = [s.name or s.type for s in self.all_sinks()]
        if len(dests) != len(set(dests)):
            raise ValueError(f"alert sinks need distinct names (give each a 'name'); got {dests}")
        return self

    def all_sinks(self) -> list[SinkConfig]:
        """The configured sinks, the ``webhook:`` shorthand first."""
        legacy = [] if self.webhook is None else [WebhookSinkConfig(name="webhook", **self.webhook.model_dump())]
        return [*legacy, *self.sinks]


class MonitoringConfig(_Strict):
    drift: DriftConfig = Field(default_factory=DriftConfig)
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)
    anomaly: AnomalyConfig = Field(default_factory=AnomalyConfig)
    attacks: AttacksConfig = Field(default_factory=AttacksConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)


def parse_monitoring_config(data: dict[str, Any] | None, *, source: str = "monitoring config") -> MonitoringConfig:
    """Validate a ``monitoring:`` mapping; ``None`` gives the defaults."""
    try:
        return MonitoringConfig.model_validate(data or {})
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in err['loc']) or '<root>'}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(f"Invalid 'monitoring' section in {source}: {problems}. Fix the file and retry.") from e


def load_monitoring_config(path: str | Path | None) -> MonitoringConfig:
    """Read the ``monitoring:`` section of a policy file (defaults when the file or section is absent)."""
    if path is None:
        return MonitoringConfig()
    p = Path(path)
    if not p.exists():
        return MonitoringConfig()
    doc = read_policy_file(p)  # one reader: every section of the file is checked by its owner
    parsed = doc.parsed.get("monitoring")
    return parsed if isinstance(parsed, MonitoringConfig) else MonitoringConfig()


def _monitoring_section(doc: PolicyDocument) -> MonitoringConfig:
    section = doc.get("monitoring")
    if section is not None and not isinstance(section, dict):
        raise ConfigError(f"'monitoring' in {doc.source} must be a mapping; got {type(section).__name__}.")
    return parse_monitoring_config(section, source=doc.source)


register_section("monitoring", {"monitoring"}, _monitoring_section)
