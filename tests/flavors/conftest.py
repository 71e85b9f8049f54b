"""Flavor fixtures: real models of every framework trained once per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.flavors import builders as b


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("flavor-artifacts")
    df = b.frame(500)
    out: dict[str, Any] = {"frame": df, "dir": d}
    out["onnx"], out["onnx_model"] = b.onnx_pipeline(df, d)
    out["onnx_zipmap"] = b.onnx_zipmap(df, d)
    out["xgboost"], out["xgboost_model"] = b.xgboost_json(df, d)
    out["xgboost_ubj"], _ = b.xgboost_json(df, d, ".ubj")
    out["lightgbm"], out["lightgbm_model"] = b.lightgbm_text(df, d)
    out["skops"], out["skops_model"] = b.skops_control(df, d)
    return out


def copy_to(src: Path, dest_dir: Path, name: str | None = None) -> Path:
    dest = dest_dir / (name or src.name)
    dest.write_bytes(src.read_bytes())
    return dest
