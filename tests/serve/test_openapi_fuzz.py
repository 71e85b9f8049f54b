"""Schemathesis against the server's own OpenAPI document: valid and invalid inputs, never a 5xx."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

schemathesis = pytest.importorskip("schemathesis")  # a dev extra; the lead adds it to pyproject


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_server_errors_for_generated_requests(client: Any, keys: dict[str, str], mode: str) -> None:
    from schemathesis.generation.modes import GenerationMode

    schema = schemathesis.openapi.from_dict(client.app.openapi())
    ops = [r.ok() for r in schema.get_all_operations()]
    assert {(o.method.upper(), o.path) for o in ops} >= {("POST", "/v1/models/{name}:predict"),
                                                         ("POST", "/v1/models/{name}:explain")}
    statuses: Counter[int] = Counter()
    auth = {"Authorization": f"Bearer {keys['admin']}"}
    for op in ops:
        if op.path == "/v1/admin/reload":
            continue  # re-verifies the model (slow); covered by the reload tests
        if mode == "negative" and op.method.upper() != "POST":
            continue  # nothing to break in a request without parameters or body

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=op.as_strategy(generation_mode=GenerationMode(mode)))
        def run(case: Any) -> None:
            kw = case.as_transport_kwargs(base_url="http://testserver", headers=auth)
            send = {k: v for k, v in kw.items() if k in ("method", "url", "headers", "json", "content", "params")}
            r = client.request(**send)
            statuses[r.status_code] += 1
            assert r.status_code < 500, (send, r.text[:300])

        run()
    assert sum(statuses.values()) >= 50
    if mode == "positive":
        assert statuses[200] > 0
    else:
        assert statuses[422] + statuses[400] > 0
