"""Attack patterns in the prediction log: model extraction (volume or input diversity far above a
key's baseline), evasion probing (near-duplicate queries walking toward the decision boundary), and
bursts of validation or authentication failures per key or client. Each rule yields findings naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
import pandas as pd

from bastion.monitor.config import AttacksConfig, ExtractionRule, FailureBurstRule, ProbingRule
from bastion.monitor.drift.interface import _jsonable_dict
from bastion.monitor.prediction_log import INPUT_PREFIX

__all__ = [
    "AttackFinding",
    "Severity",
    "detect_attacks",
    "detect_extraction",
    "detect_failure_bursts",
    "detect_probing",
]


class Severity(IntEnum):
    INFO = 0
    WARNING = 1
    CRITICAL = 2


@dataclass(frozen=True)
class AttackFinding:
    """One rule firing for one subject (an API key or a client address)."""

    rule: str
    severity: Severity
    key_id: str | None
    client: str | None
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    remediation: str = ""

    @property
    def subject(self) -> str:
        return f"key:{self.key_id}" if self.key_id else f"client:{self.client}"

    def to_dict(self) -> dict[str, Any]:
        return _jsonable_dict(
            {
                "rule": self.rule,
                "severity": self.severity.name.lower(),
                "subject": self.subject,
                "key_id": self.key_id,
                "client": self.client,
                "message": self.message,
                "evidence": self.evidence,
                "remediation": self.remediation,
            }
        )


def _inputs(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith(INPUT_PREFIX)]


def _hash_rows(df: pd.DataFrame, cols: list[str]) -> pd.Series:
    if not cols:
        return pd.Series(np.zeros(len(df), dtype=np.uint64), index=df.index)
    return pd.util.hash_pandas_object(df[cols], index=False)


def detect_extraction(
    window: pd.DataFrame, rule: ExtractionRule, *, baseline: pd.DataFrame | None = None, scale: float = 1.0
) -> list[AttackFinding]:
    """Keys whose query volume or number of distinct inputs is far above their baseline.

    The baseline of a key is its own count in ``baseline`` (times ``scale``, the ratio of the window
    length to the baseline length); a key without history is compared with the median key of this window.
    The same rule then runs per client address over every key it used: an extraction spread over
    several keys (each below the limits) from one address is caught as a whole.
    """
    if not rule.enabled or window.empty or "key_id" not in window.columns:
        return []
    ok = window[(window["outcome"] == "ok") & window["key_id"].notna()]
    if ok.empty:
        return []
    ok = ok.assign(_h=_hash_rows(ok, _inputs(ok)).to_numpy())
    b = None
    if baseline is not None and not baseline.empty:
        b = baseline[(baseline["outcome"] == "ok") & baseline["key_id"].notna()]
        b = b.assign(_h=_hash_rows(b, _inputs(b)).to_numpy()) if not b.empty else None
    out = _extraction_by("key_id", ok, b, rule, scale)
    if "client" in ok.columns:
        flagged = {f.key_id for f in out}
        by_client = ok[ok["client"].notna()]
        keys_per_client = by_client.groupby("client")["key_id"].nunique()
        multi = keys_per_client[keys_per_client > 1].index
        by_client = by_client[by_client["client"].isin(multi) & ~by_client["key_id"].isin(flagged)]
        if not by_client.empty:
            bc = b[b["client"].notna()] if b is not None and "client" in b.columns else None
            # peers of an address: every address of the window (one-key addresses included)
            out += _extraction_by("client", by_client, bc, rule, scale,
                                  peers=ok[ok["client"].notna()], keys=keys_per_client)
    return out


def _extraction_by(
    subject: str,
    ok: pd.DataFrame,
    hist_rows: pd.DataFrame | None,
    rule: ExtractionRule,
    scale: float,
    *,
    peers: pd.DataFrame | None = None,
    keys: pd.Series | None = None,
) -> list[AttackFinding]:
    stats = ok.groupby(subject).agg(n=("_h", "size"), distinct=("_h", "nunique"))
    peer_stats = stats if peers is None else peers.groupby(subject).agg(n=("_h", "size"), distinct=("_h", "nunique"))
    hist = None
    if hist_rows is not None and not hist_rows.empty:
        hist = hist_rows.groupby(subject).agg(n=("_h", "size"), distinct=("_h", "nunique")) * scale
    peer_n = float(peer_stats["n"].median())
    peer_d = float(peer_stats["distinct"].median())
    out = []
    for who, row in stats.iterrows():
        if hist is not None and who in hist.index:
            base_n, base_d, basis = float(hist.at[who, "n"]), float(hist.at[who, "distinct"]), "own history"
        else:
            others = peer_stats.drop(index=who)
            base_n = float(others["n"].median()) if len(others) else peer_n
            base_d = float(others["distinct"].median()) if len(others) else peer_d
            basis = ("median of other keys" if subject == "key_id" else "median of other addresses") if len(
                others) else "none"
            if basis == "none":
                continue
        base_n, base_d = max(base_n, 1.0), max(base_d, 1.0)
        n, d = int(row["n"]), int(row["distinct"])
        volume = n >= rule.min_queries and n > rule.volume_ratio * base_n
        diverse = d >= rule.min_queries and d > rule.diversity_ratio * base_d
        if volume or diverse:
            what = " and ".join(w for w, hit in (("volume", volume), ("input diversity", diverse)) if hit)
            counts = f"({n} queries, {d} distinct inputs vs baseline {base_n:.0f}/{base_d:.0f}, {basis})"
            evidence: dict[str, Any] = {"queries": n, "distinct_inputs": d, "baseline_queries": base_n,
                                        "baseline_distinct": base_d, "baseline": basis}
            if subject == "key_id":
                key_id, client = str(who), None
                message = f"Key {who} shows possible model extraction: {what} far above its baseline {counts}."
                remediation = "Review the key's traffic; rate-limit or revoke it (`bastion keys api revoke`)."
            else:
                n_keys = int(keys[who]) if keys is not None and who in keys.index else 0
                key_id, client = None, str(who)
                evidence["keys"] = n_keys
                message = (f"Client {who} shows possible model extraction spread over {n_keys} keys: {what} "
                           f"far above its baseline {counts}.")
                remediation = "Review the address's keys; block the address, revoke its keys."
            out.append(AttackFinding(rule="extraction", severity=Severity.CRITICAL, key_id=key_id, client=client,
                                     message=message, evidence=evidence, remediation=remediation))
    return out


def detect_probing(
    window: pd.DataFrame, rule: ProbingRule, *, scales: dict[str, float] | None = None
) -> list[AttackFinding]:
    """Keys sending many consecutive near-duplicate inputs whose predictions flip or sit near 0.5.

    Distance between consecutive inputs of a key is the mean absolute difference over numeric
    features in units of ``scales`` (reference standard deviations; default: this window's).
    Categorical inputs must be equal for a pair to count as near-duplicate.
    """
    if not rule.enabled or window.empty or "key_id" not in window.columns:
        return []
    ok = window[(window["outcome"] == "ok") & window["key_id"].notna()].sort_values("ts", kind="stable")
    cols = _inputs(ok)
    num = [c for c in cols if pd.api.types.is_numeric_dtype(ok[c])]
    cat = [c for c in cols if c not in num]
    if ok.empty or not num:
        return []
    sc = np.array(
        [
            (scales or {}).get(c[len(INPUT_PREFIX):]) or float(np.nanstd(ok[c].to_numpy(dtype=float))) or 1.0
            for c in num
        ]
    )
    out = []
    for key, g in ok.groupby("key_id", sort=False):
        if len(g) < rule.min_near_duplicates + 1:
            continue
        x = g[num].to_numpy(dtype=float) / sc
        catv = g[cat].to_numpy() if cat else None
        dist, nearest = _nearest_previous(x, catv, rule.lookback)
        near = dist <= rule.max_distance
        n_near = int(near.sum())
        if n_near < rule.min_near_duplicates:
            continue
        flips = 0
        if "out.label" in g.columns:
            lab = g["out.label"].astype(str).to_numpy()
            flips = int(np.sum((lab[1:] != lab[nearest]) & near))
        boundary = 0.0
        if "out.proba" in g.columns:
            p = g["out.proba"].to_numpy(dtype=float)[1:][near]
            boundary = float(np.mean(np.abs(p - 0.5) <= rule.boundary_band)) if p.size else 0.0
        if flips >= rule.min_flips or boundary >= rule.min_boundary_share:
            out.append(
                AttackFinding(
                    rule="evasion_probing",
                    severity=Severity.CRITICAL,
                    key_id=str(key),
                    client=None,
                    message=f"Key {key} sent {n_near} near-duplicate queries with {flips} prediction flips and "
                    f"{boundary:.0%} near the decision boundary: likely evasion probing.",
                    evidence={"queries": len(g), "near_duplicates": n_near, "flips": flips,
                              "boundary_share": boundary},
                    remediation="Review the key's queries; revoke it or add noise/rounding to scores.",
                )
            )
    return out


def _nearest_previous(x: np.ndarray, cat: np.ndarray | None, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    """For each query after the first: distance to the closest of the ``lookback`` queries before it, and its index.

    Comparing with every recent query (not only the one just before) means decoy queries interleaved
    between the probes do not hide them. Distance is the mean absolute difference over the numeric
    features both queries have (NaN-aware; ``inf`` when none, when a categorical input differs, or
    for an exact repeat).
    """
    n = x.shape[0]
    best = np.full(n - 1, np.inf)
    arg = np.arange(n - 1)  # default neighbour: the previous query
    with np.errstate(invalid="ignore"):  # inf - inf: an unusable pair, handled as missing
        for lag in range(1, min(lookback, n - 1) + 1):
            diff = np.abs(x[lag:] - x[:-lag])
            ok = np.isfinite(diff)
            cnt = ok.sum(axis=1)
            total = np.where(ok, diff, 0.0).sum(axis=1)
            d = np.full(n - lag, np.inf)
            np.divide(total, cnt, out=d, where=cnt > 0)
            if cat is not None:
                d[~(cat[lag:] == cat[:-lag]).all(axis=1)] = np.inf
            d[d == 0] = np.inf  # an exact repeat (a retry, a cache miss) tells a prober nothing
            tail = best[lag - 1 :]  # rows lag..n-1 of the queries, compared with row - lag
            better = d < tail
            tail[better] = d[better]
            arg[lag - 1 :][better] = np.flatnonzero(better)
    return best, arg


def detect_failure_bursts(window: pd.DataFrame, rule: FailureBurstRule) -> list[AttackFinding]:
    """Keys or client addresses with many invalid, unauthorized or rate-limited requests."""
    if not rule.enabled or window.empty:
        return []
    limits = {"invalid": rule.invalid, "unauthorized": rule.unauthorized, "rate_limited": rule.rate_limited}
    out = []
    for subject_col in ("key_id", "client"):
        if subject_col not in window.columns:
            continue
        w = window[window[subject_col].notna()]
        if subject_col == "client" and "key_id" in w.columns:
            # Failures with a key are attributed to the key; by address only those without one.
            w = w[w["key_id"].isna()]
        if w.empty:
            continue
        total = w.groupby(subject_col).size()
        counts = w.groupby([subject_col, "outcome"]).size()
        for (subject, outcome), n in counts.items():
            limit = limits.get(str(outcome))
            if limit is None or n < limit:
                continue
            share = n / total[subject]
            if share < rule.min_share:
                continue
            key = str(subject) if subject_col == "key_id" else None
            client = str(subject) if subject_col == "client" else None
            who = f"Key {key}" if key else f"Client {client}"
            out.append(
                AttackFinding(
                    rule=f"{outcome}_burst",
                    severity=Severity.CRITICAL if outcome == "unauthorized" else Severity.WARNING,
                    key_id=key,
                    client=client,
                    message=f"{who} had {n} {outcome} requests ({share:.0%} of its {int(total[subject])}).",
                    evidence={"count": int(n), "share": float(share), "requests": int(total[subject])},
                    remediation="Check the caller; block the address or revoke the key if it is hostile.",
                )
            )
    return out


def detect_attacks(
    window: pd.DataFrame,
    config: AttacksConfig | None = None,
    *,
    baseline: pd.DataFrame | None = None,
    baseline_scale: float = 1.0,
    scales: dict[str, float] | None = None,
) -> list[AttackFinding]:
    """Every attack rule over one window of the prediction log."""
    cfg = config or AttacksConfig()
    return [
        *detect_extraction(window, cfg.extraction, baseline=baseline, scale=baseline_scale),
        *detect_probing(window, cfg.probing, scales=scales),
        *detect_failure_bursts(window, cfg.failures),
    ]
