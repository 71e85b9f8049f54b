"""The demo's serving stage on the sample project: good, unauthorized and malformed requests, then a rollback
that the running server follows."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any


def test_serve_stage_shows_requests_and_the_switch(sample: Any, project: Any, tmp_path: Path) -> None:
    from rich.console import Console

    from bastion.demo import serve_stage
    from bastion.demo.run import DemoContext

    project.promote(sample.refs[1], alias="production")  # so that a rollback has somewhere trusted to go
    out = io.StringIO()
    ctx = DemoContext(project=project, console=Console(file=out, width=200), workdir=tmp_path,
                      state={"approved_ref": sample.refs[1], "test_df": sample.frame,
                             "features": list(sample.features), "target": sample.target})
    serve_stage.run(ctx)
    text = out.getvalue()
    assert "authorized predict        -> 200" in text
    assert "no credential             -> 401" in text
    assert "wrong key                 -> 401" in text
    assert "predict key on :explain   -> 403" in text
    assert "malformed (unknown field, out of range) -> 422" in text
    assert "NaN                       -> 4" in text
    assert f"Switched without restart: now serving {sample.refs[0]}" in text
    assert f"the server followed: serving {sample.refs[1]}" in text
    assert project.get_model("sample@production").ref == sample.refs[1]  # left as the stage found it
