"""The model routes' ASGI front door (``_ServerApp.fast_path``) answers exactly as the routed way does.

With the front door off (``fast_path = None``) the same app routes the request the usual Starlette way to
the same handler, so the two ways can be compared on one app: status, the headers that matter, and the
body (less the request id), for good and hostile requests alike.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .helpers import bearer, good_row


def _cases(sample: Any, keys: dict[str, str]) -> list[tuple[str, str, bytes, dict[str, str]]]:
    name, row = sample.name, good_row(sample)
    good = json.dumps({"instances": [row]}).encode()
    return [
        ("ok", f"/v1/models/{name}:predict", good, bearer(keys["predict"])),
        ("explain", f"/v1/models/{name}:explain", good, bearer(keys["explain"])),
        ("no key", f"/v1/models/{name}:predict", good, {}),
        ("revoked", f"/v1/models/{name}:predict", good, bearer(keys["revoked"])),
        ("wrong role", f"/v1/models/{name}:explain", good, bearer(keys["predict"])),
        ("other model", "/v1/models/other:predict", good, bearer(keys["predict"])),
        ("colon in name", f"/v1/models/{name}:x:predict", good, bearer(keys["predict"])),
        ("unknown field", f"/v1/models/{name}:predict",
         json.dumps({"instances": [{**row, "zz": 1}]}).encode(), bearer(keys["predict"])),
        ("not json", f"/v1/models/{name}:predict", b"{nope", bearer(keys["predict"])),
        ("bad length", f"/v1/models/{name}:predict", good, {**bearer(keys["predict"]), "Content-Length": "x"}),
    ]


def _answer(r: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    doc = r.json()
    doc.pop("request_id", None)
    kept = {k: r.headers[k] for k in ("content-type", "www-authenticate", "retry-after") if k in r.headers}
    assert r.headers.get("x-request-id")
    return r.status_code, doc, kept


def test_fast_and_routed_ways_answer_alike(client: Any, sample: Any, keys: dict[str, str]) -> None:
    fast = client.app.fast_path
    assert fast is not None
    statuses = []
    for label, path, body, headers in _cases(sample, keys):
        client.app.fast_path = fast
        a = _answer(client.post(path, content=body, headers=headers))
        client.app.fast_path = None
        b = _answer(client.post(path, content=body, headers=headers))
        assert a == b, label
        statuses.append(a[0])
    client.app.fast_path = fast
    assert statuses == [200, 200, 401, 401, 403, 404, 404, 422, 400, 400]


def test_the_fast_way_is_the_one_taken_and_is_journaled(client: Any, sample: Any, keys: dict[str, str]) -> None:
    """Every model request through the front door is still authenticated, limited, journaled and counted."""
    calls: list[str] = []
    fast = client.app.fast_path

    async def spy(scope: Any, receive: Any, send: Any) -> bool:
        handled = await fast(scope, receive, send)
        calls.append(f"{scope['path']}:{handled}")
        return bool(handled)

    client.app.fast_path = spy
    journal = client.app.state.bastion.journal
    seq = journal.seq
    body = json.dumps({"instances": [good_row(sample)]}).encode()
    path = f"/v1/models/{sample.name}:predict"
    assert client.post(path, content=body, headers=bearer(keys["predict"])).status_code == 200
    assert client.post(path, content=body).status_code == 401
    assert journal.seq == seq + 2  # both answers are in the request journal
    assert client.get("/healthz").status_code == 200
    assert calls == [f"/v1/models/{sample.name}:predict:True"] * 2 + ["/healthz:False"]
    metrics = client.get("/metrics", headers=bearer(keys["admin"])).text
    assert 'bastion_requests_total{outcome="ok",route="predict"}' in metrics
    assert 'bastion_requests_total{outcome="unauthorized",route="predict"}' in metrics


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_on_a_model_path_take_the_usual_way(client: Any, sample: Any, method: str) -> None:
    r = client.request(method, f"/v1/models/{sample.name}:predict")
    assert r.status_code == 405
