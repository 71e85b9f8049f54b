"""The server as an attacker sees it: every route's credentials and roles (from the route table), bodies
that are too big, too deep, malformed or out of range, and what reaches logs."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Route

from .helpers import bearer, good_row


def _routes(app: Any) -> list[tuple[str, str, str | None]]:
    """(method, concrete path, required role) for every route; public routes have role None."""
    out = []
    roles = app.state.route_roles
    for r in app.routes:  # plain Starlette routes too (the fast model routes), not only FastAPI's
        if not isinstance(r, Route):
            continue
        for m in sorted(r.methods or ()):
            item = (m, r.path.replace("{name}", "sample"), roles.get((m, r.path)))
            if item not in out:
                out.append(item)
    return out


def _send(client: Any, method: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
    return client.request(method, path, headers=headers, json=body if method == "POST" else None)


def test_every_route_states_a_role_or_is_public(client: Any) -> None:
    from bastion.serve.app import PUBLIC_PATHS

    routes = _routes(client.app)
    assert len(routes) >= 7
    for method, path, role in routes:
        assert role is not None or path in PUBLIC_PATHS, f"{method} {path} has no role"


@pytest.mark.parametrize("cred", ["none", "garbage", "wrong_scheme", "unknown_key", "revoked", "jwt_like"])
def test_every_protected_route_refuses_bad_credentials(client: Any, keys: dict[str, str], sample: Any,
                                                        cred: str) -> None:
    headers = {
        "none": {},
        "garbage": {"Authorization": "Bearer not-a-key"},
        "wrong_scheme": {"Authorization": f"Basic {keys['admin']}"},
        "unknown_key": bearer("bst_0123abcd_" + "A" * 43),
        "revoked": bearer(keys["revoked"]),
        "jwt_like": bearer("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
    }[cred]
    body = {"instances": [good_row(sample)]}
    for method, path, role in _routes(client.app):
        r = _send(client, method, path, headers, body)
        if role is None:
            assert r.status_code in (200, 503), (method, path)
            continue
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert r.headers.get("www-authenticate") == "Bearer"
        assert "predictions" not in r.text and "sample:" not in r.text


def test_every_protected_route_refuses_the_wrong_role(client: Any, keys: dict[str, str], sample: Any) -> None:
    body = {"instances": [good_row(sample)]}
    for method, path, role in _routes(client.app):
        if role is None or role == "any":
            continue
        for holder in ("predict", "explain"):
            if holder == role:
                continue
            r = _send(client, method, path, bearer(keys[holder]), body)
            assert r.status_code == 403, (method, path, holder, r.status_code)
        r = _send(client, method, path, bearer(keys["admin"]), body)  # admin may do everything
        assert r.status_code in (200, 409), (method, path, r.status_code, r.text)


def test_revocation_takes_effect_without_restart(client: Any, project: Any, sample: Any) -> None:
    from bastion.serve.auth import create_api_key, revoke_api_key

    k = create_api_key(project, "short-lived", ["predict"]).key
    body = {"instances": [good_row(sample)]}
    assert client.post("/v1/models/sample:predict", json=body, headers=bearer(k)).status_code == 200
    revoke_api_key(project, "short-lived", reason="leaked")
    assert client.post("/v1/models/sample:predict", json=body, headers=bearer(k)).status_code == 401


def test_predict_answers_with_labels_probabilities_and_request_id(client: Any, keys: dict[str, str],
                                                                  sample: Any) -> None:
    rows = [good_row(sample, i) for i in range(5)]
    r = client.post("/v1/models/sample:predict", json={"instances": rows}, headers=bearer(keys["predict"]))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["model"] == "sample" and doc["version"] == 1
    assert len(doc["predictions"]) == 5 and set(doc["predictions"]) <= {0, 1}
    assert all(0.0 <= p <= 1.0 for p in doc["probabilities"])
    assert doc["request_id"] == r.headers["x-request-id"]
    # the served answers are the model's own
    model = client.app.state.bastion.current.model
    import pandas as pd

    assert doc["predictions"] == model.predict(pd.DataFrame(rows)).tolist()


def test_explain_returns_linear_contributions(client: Any, keys: dict[str, str], sample: Any) -> None:
    r = client.post("/v1/models/sample:explain", json={"instances": [good_row(sample)]},
                    headers=bearer(keys["explain"]))
    assert r.status_code == 200, r.text
    ex = r.json()["explanations"][0]
    assert len(ex["contributions"]) == 33  # every model input column: 30 scaled numbers + 3 one-hot segments
    assert abs(sum(ex["contributions"].values()) + ex["intercept"] - ex["score"]) < 1e-4
    import pandas as pd

    model = client.app.state.bastion.current.model
    assert abs(model.decision_function(pd.DataFrame([good_row(sample)]))[0] - ex["score"]) < 1e-5


def test_other_model_name_is_404(client: Any, keys: dict[str, str], sample: Any) -> None:
    r = client.post("/v1/models/other:predict", json={"instances": [good_row(sample)]},
                    headers=bearer(keys["predict"]))
    assert r.status_code == 404


def _bad_bodies(sample: Any) -> list[tuple[str, bytes, int, str]]:
    row = good_row(sample)
    num = "f0"

    def body(**changes: Any) -> bytes:
        return json.dumps({"instances": [{**row, **changes}]}).encode()

    deep = b'{"instances": [' + b"[" * 60 + b"]" * 60 + b"]}"
    deep_in_unknown = b'{"x": ' + b'{"a":' * 40 + b"1" + b"}" * 40 + b', "instances": []}'
    return [
        ("unknown field", body(favourite_colour="blue"), 422, "extra_forbidden"),
        ("NaN", body().replace(f'"{num}": '.encode(), f'"{num}": NaN, "_": '.encode(), 1), 422, ""),
        ("NaN value", re.sub(rb'"f0": [-0-9.e]+', b'"f0": NaN', body()), 422, "finite_number"),
        ("Infinity", re.sub(rb'"f0": [-0-9.e]+', b'"f0": Infinity', body()), 422, "finite_number"),
        ("-Infinity", re.sub(rb'"f0": [-0-9.e]+', b'"f0": -Infinity', body()), 422, "finite_number"),
        ("huge number", re.sub(rb'"f0": [-0-9.e]+', b'"f0": 1e400', body()), 422, "finite_number"),
        ("string for number", body(f0="1.5"), 422, "float_type"),
        ("bool for number", body(f0=True), 422, "float_type"),
        ("null for number", body(f0=None), 422, "float_type"),
        ("out of range", body(f0=1e6), 422, "less_than_equal"),
        ("unknown category", body(segment="zzz"), 422, "literal_error"),
        ("missing field", json.dumps({"instances": [{k: v for k, v in row.items() if k != "f3"}]}).encode(), 422,
         "missing"),
        ("empty batch", b'{"instances": []}', 422, "too_short"),
        ("not an object", b"[1, 2, 3]", 422, "model_type"),
        ("broken JSON", b'{"instances": [', 400, ""),
        ("empty body", b"", 400, ""),
        ("deep nesting", deep, 400, ""),
        ("deep nesting in unknown field", deep_in_unknown, 400, ""),
    ]


def test_malformed_bodies_are_refused_with_per_field_messages(client: Any, keys: dict[str, str],
                                                               sample: Any) -> None:
    before = client.app.state.bastion.metrics.validation_failures.labels("predict")._value.get()
    cases = _bad_bodies(sample)
    for label, raw, status, err_type in cases:
        r = client.post("/v1/models/sample:predict", content=raw,
                        headers={**bearer(keys["predict"]), "content-type": "application/json"})
        assert r.status_code == status, (label, r.status_code, r.text[:300])
        doc = r.json()
        assert "predictions" not in doc
        if err_type:
            assert any(e["type"] == err_type for e in doc["errors"]), (label, doc)
            assert all(isinstance(e["loc"], list) and e["msg"] for e in doc["errors"])
            assert "1000000" not in r.text and "blue" not in r.text  # values are never echoed
    after = client.app.state.bastion.metrics.validation_failures.labels("predict")._value.get()
    assert after - before == len(cases)


def test_oversized_body_is_refused_before_reading(client: Any, keys: dict[str, str], sample: Any) -> None:
    limit = client.app.state.bastion.config.limits.max_body_bytes
    big = b'{"instances": [' + b" " * (limit + 10) + b"]}"
    r = client.post("/v1/models/sample:predict", content=big,
                    headers={**bearer(keys["predict"]), "content-type": "application/json"})
    assert r.status_code == 413

    def chunks() -> Any:  # no Content-Length: the stream is cut off at the limit
        yield b'{"instances": ['
        for _ in range(limit // 4096 + 2):
            yield b" " * 4096

    r = client.post("/v1/models/sample:predict", content=chunks(), headers=bearer(keys["predict"]))
    assert r.status_code == 413


def test_batch_row_limit(sample: Any, project: Any, keys: dict[str, str]) -> None:
    from starlette.testclient import TestClient

    from bastion.serve import LimitSettings, create_app

    from .helpers import make_config

    app = create_app(make_config(sample, limits=LimitSettings(max_rows=3)), project=project)
    with TestClient(app) as c:
        rows = [good_row(sample, i) for i in range(4)]
        r = c.post("/v1/models/sample:predict", json={"instances": rows}, headers=bearer(keys["predict"]))
        assert r.status_code == 422 and r.json()["errors"][0]["type"] == "too_long"
        r = c.post("/v1/models/sample:predict", json={"instances": rows[:3]}, headers=bearer(keys["predict"]))
        assert r.status_code == 200


def test_rate_limit_answers_429_with_retry_after(sample: Any, project: Any, keys: dict[str, str]) -> None:
    from starlette.testclient import TestClient

    from bastion.serve import LimitSettings, create_app

    from .helpers import make_config

    app = create_app(make_config(sample, limits=LimitSettings(rate=0.5, burst=3)), project=project)
    body = {"instances": [good_row(sample)]}
    with TestClient(app) as c:
        codes = [c.post("/v1/models/sample:predict", json=body, headers=bearer(keys["predict"])) for _ in range(5)]
        assert [r.status_code for r in codes] == [200, 200, 200, 429, 429]
        assert int(codes[-1].headers["retry-after"]) >= 1
        # another key has its own bucket
        assert c.post("/v1/models/sample:predict", json=body, headers=bearer(keys["admin"])).status_code == 200


def test_a_body_that_never_arrives_times_out_and_other_cancellations_pass_through(
    sample: Any, project: Any, keys: dict[str, str]
) -> None:
    """The request timeout (a watchdog, not a timer per request) answers 504 and journals it; the server
    keeps serving; a cancellation that is not the watchdog's (client gone, shutdown) is not turned into one."""
    import asyncio
    import time

    from bastion.serve import LimitSettings, create_app

    from .helpers import make_config

    app = create_app(make_config(sample, prediction_log=False, limits=LimitSettings(timeout_s=0.4)), project=project)
    body = json.dumps({"instances": [good_row(sample)]}).encode()
    headers = [(b"content-type", b"application/json"), (b"authorization", f"Bearer {keys['predict']}".encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/models/sample:predict", "raw_path": b"/v1/models/sample:predict", "query_string": b"",
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 80)}

    async def call(receive: Any) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def send(msg: dict[str, Any]) -> None:
            sent.append(msg)

        await app(dict(scope), receive, send)
        return sent

    async def never() -> dict[str, Any]:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def whole() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def run() -> tuple[list[dict[str, Any]], float, list[dict[str, Any]], bool]:
        life_in: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        life_out: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await life_in.put({"type": "lifespan.startup"})
        life = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, life_in.get, life_out.put))
        assert (await life_out.get())["type"] == "lifespan.startup.complete"
        t0 = time.monotonic()
        slow = await asyncio.wait_for(call(never), 10)
        took = time.monotonic() - t0
        fine = await call(whole)
        other = asyncio.create_task(call(never))
        await asyncio.sleep(0.05)
        other.cancel()
        try:
            await other
            passed_through = False
        except asyncio.CancelledError:
            passed_through = True
        await life_in.put({"type": "lifespan.shutdown"})
        await life_out.get()
        await life
        return slow, took, fine, passed_through

    slow, took, fine, passed_through = asyncio.run(run())
    assert slow[0]["status"] == 408 and json.loads(slow[1]["body"])["error"] == "timeout"
    assert 0.4 <= took < 3
    assert fine[0]["status"] == 200
    assert passed_through
    journal = app.state.bastion.journal
    entries = [json.loads(line) for line in journal.path.read_text().splitlines() if '"request_id"' in line]
    assert [(e["status"], e["outcome"]) for e in entries] == [(408, "invalid"), (200, "ok")]


def test_health_metrics_and_openapi(client: Any, keys: dict[str, str], sample: Any) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    client.post("/v1/models/sample:predict", json={"instances": [good_row(sample)]}, headers=bearer(keys["predict"]))
    client.post("/v1/models/sample:predict", json={"instances": [{}]}, headers=bearer(keys["predict"]))
    client.post("/v1/models/sample:predict", json={"instances": [{}]})
    text = client.get("/metrics", headers=bearer(keys["admin"])).text
    assert 'bastion_requests_total{outcome="ok",route="predict"} 1.0' in text
    assert 'bastion_validation_failures_total{route="predict"} 1.0' in text
    assert 'bastion_auth_rejected_total{reason="unauthenticated"}' in text
    assert 'bastion_model_info{digest="sha256:' in text and 'version="1"' in text
    assert "bastion_request_latency_seconds_bucket" in text
    doc = client.get("/openapi.json", headers=bearer(keys["predict"])).json()
    assert "/v1/models/{name}:predict" in doc["paths"]
    props = doc["components"]["schemas"]["PredictRequest"]["properties"]["instances"]
    assert props["maxItems"] == 1000
    row_schema = doc["components"]["schemas"]["sample_Instance"]
    assert row_schema["additionalProperties"] is False and "f0" in row_schema["required"]
    assert row_schema["properties"]["segment"]["enum"] == ["a", "b", "c"]


def test_every_request_is_journaled_and_no_secret_reaches_any_log(
    sample: Any, project: Any, keys: dict[str, str], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Canaries: the API keys, a JWT-looking token and the sensitive field's value appear in no log, journal,
    prediction log or audit entry; the protected input is dropped from the prediction log."""
    from starlette.testclient import TestClient

    from bastion.monitor.prediction_log import read_prediction_log
    from bastion.serve import create_app, verify_journal

    from .helpers import make_config

    # mark f0 as protected in the training dataset's protection report
    project.attach(sample.dataset_ref, "protection",
                   {"schema_version": 1, "columns": [{"column": "f0", "operator": "tokenize", "scope": "column"}]},
                   subject_kind="dataset")
    caplog.set_level(logging.DEBUG, logger="bastion")
    app = create_app(make_config(sample, access_log=True), project=project)
    canary_row = {**good_row(sample), "f0": 0.123456789}
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnbmF0dXJlY2FuYXJ5"
    with TestClient(app) as c:
        ok = c.post("/v1/models/sample:predict", json={"instances": [canary_row]}, headers=bearer(keys["predict"]))
        assert ok.status_code == 200
        assert c.post("/v1/models/sample:predict", json={"instances": [canary_row]},
                      headers=bearer(keys["revoked"])).status_code == 401
        assert c.post("/v1/models/sample:predict", json={"instances": [canary_row]},
                      headers=bearer(token)).status_code == 401
        assert c.post("/v1/models/sample:predict", json={"instances": [{**canary_row, "f1": "x"}]},
                      headers=bearer(keys["explain"])).status_code == 403
        journal = app.state.bastion.journal
    assert journal is not None
    entries = [json.loads(line) for line in journal.path.read_text().splitlines()]
    reqs = [e for e in entries if "request_id" in e]
    assert [e["status"] for e in reqs] == [200, 401, 401, 403]
    assert reqs[0]["request_id"] == ok.headers["x-request-id"] and reqs[0]["key_id"].startswith("key:")
    assert verify_journal(journal.path).ok
    log_df = read_prediction_log(project, "sample")
    assert "in.f0" not in log_df.columns and "in.f1" in log_df.columns
    assert (log_df["outcome"] == "ok").sum() == 1
    haystacks = [journal.path.read_text(), caplog.text, log_df.to_json(date_format="iso"),
                 json.dumps([e.to_dict() for e in project.audit.entries()])]
    for f in (project.home / "keys" / "api").glob("*"):
        haystacks.append(f.read_text())
    for h in haystacks:
        for secret in [*keys.values(), token, "0.123456789"]:
            assert secret not in h
        for k in keys.values():
            assert k.split("_", 2)[2] not in h  # not even the secret half (bst_<id>_<secret>; it may hold "_")


def test_dashboard_mounts_under_ui_with_its_own_login(sample: Any, project: Any, keys: dict[str, str]) -> None:
    from starlette.testclient import TestClient

    from bastion.serve import create_app
    from bastion.ui.users import UserStore

    from .helpers import make_config

    UserStore(project).add("ops", "a long enough password 1", role="operator")
    app = create_app(make_config(sample, ui=True), project=project)
    with TestClient(app) as c:
        r = c.get("/ui/", follow_redirects=False)
        assert r.status_code in (302, 303) and "/ui/login" in r.headers["location"]
        assert c.get("/ui/", headers=bearer(keys["predict"]), follow_redirects=False).status_code in (302, 303)
        assert c.get("/ui/login").status_code == 200
        # the API keeps its own authentication
        assert c.post("/v1/models/sample:predict", json={"instances": [good_row(sample)]}).status_code == 401


def test_a_model_failure_is_a_500_whose_log_names_the_error_type_but_never_its_message(
    client: Any, keys: dict[str, str], sample: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Model errors can quote the inputs (PII); the server logs the exception type and traceback frames only."""
    canary = "CANARY-7731-patient-jane.doe@example.org"
    loaded = client.app.state.bastion.current

    def failing_predict(x: Any) -> Any:
        raise ValueError(f"Found unknown categories ['{canary}'] in column 0 during transform")

    original = loaded.predict
    object.__setattr__(loaded, "predict", failing_predict)
    try:
        with caplog.at_level(logging.DEBUG):
            r = client.post("/v1/models/sample:predict", headers=bearer(keys["predict"]),
                            json={"instances": [good_row(sample)]})
    finally:
        object.__setattr__(loaded, "predict", original)
    assert r.status_code == 500 and r.json()["error"] == "internal"
    assert canary not in r.text
    failures = [rec for rec in caplog.records if "failed" in rec.getMessage()]
    assert failures and "ValueError" in failures[0].getMessage()
    assert all(canary not in rec.getMessage() and canary not in (rec.exc_text or "") for rec in caplog.records)
    assert all(rec.exc_info is None for rec in failures)
