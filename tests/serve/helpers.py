"""Helpers shared by the serving tests."""

from __future__ import annotations

from typing import Any


def make_config(sample: Any, **kw: Any) -> Any:
    from bastion.serve import ServeConfig

    kw.setdefault("poll_s", 0)
    return ServeConfig(ref=f"{sample.name}@production", project_root=str(sample.root), **kw)


def good_row(sample: Any, i: int = 0) -> dict[str, Any]:
    rec = sample.frame[list(sample.features)].iloc[i].to_dict()
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
