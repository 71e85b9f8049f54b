"""Frozen records of dataset and model versions, as the registry returns them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["DatasetVersion", "ModelVersion"]


class _Versioned:
    """What every version record offers: its reference, its tombstone and a JSON-ready dict."""

    name: str
    version: int
    deleted_at: str | None
    aliases: tuple[str, ...]

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = asdict(self)  # type: ignore[call-overload]
        d["ref"] = self.ref
        d["aliases"] = list(self.aliases)
        return d


@dataclass(frozen=True)
class DatasetVersion(_Versioned):
    """One immutable version of a dataset."""

    name: str
    version: int
    digest: str
    fmt: str
    rows: int | None
    size: int | None
    schema: list[dict[str, Any]]
    stats: dict[str, dict[str, Any]]
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    derived_from: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    created_by: str = ""
    deleted_at: str | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelVersion(_Versioned):
    """One immutable version of a model, with where it came from."""

    name: str
    version: int
    digest: str
    artifact_kind: str
    artifact_name: str
    size: int | None
    framework: str
    flavor: str
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    datasets: list[str] = field(default_factory=list)
    parent: str | None = None
    code: dict[str, Any] = field(default_factory=dict)
    environment_digest: str | None = None
    scan_status: str = "unscanned"
    created_at: str = ""
    created_by: str = ""
    deleted_at: str | None = None
    aliases: tuple[str, ...] = ()
