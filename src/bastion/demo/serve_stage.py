"""Demo stage: serve the approved model on a loopback port, send good, unauthorized and malformed requests,
then roll the alias back and show the server follow it (or refuse, and say why).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from bastion.errors import BastionError

if TYPE_CHECKING:
    from bastion.demo.run import DemoContext

__all__ = ["ServerThread", "free_port", "run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """A uvicorn server for an app on a background thread (for the demo and tests)."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        from bastion.serve._conn import ConnectionLimits, uvicorn_connection_options
        from bastion.serve.runner import forwarded_options

        self.port = port
        # the same connection guard and forwarded-header policy as `bastion serve`
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                                    access_log=False, lifespan="on", **forwarded_options(()),
                                                    **uvicorn_connection_options(ConnectionLimits())))
        self.thread = threading.Thread(target=self.server.run, name="bastion-demo-server", daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the demo server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _row(df: Any, features: list[str]) -> dict[str, Any]:
    rec = df[features].iloc[0].to_dict()
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()}


def run(ctx: DemoContext) -> None:
    import httpx

    from bastion.serve import ServeConfig, create_api_key, create_app

    p, say, st = ctx.project, ctx.say, ctx.state
    approved = st.get("approved_ref")
    if not approved:
        say("[yellow]No approved model; nothing to serve.[/]")
        return
    name = approved.split(":")[0]
    ref = f"{name}@production"
    port = free_port()
    config = ServeConfig(ref=ref, project_root=str(p.root), port=port, poll_s=0.5, prediction_log=True)
    try:
        app = create_app(config)
    except BastionError as e:
        say(f"[red]The server refuses to serve {ref}:[/] {e}")
        return
    served = app.state.bastion.current
    say(f"Verified {served.ref} for {ref}: " + ", ".join(
        f"{k} ok" for k, c in served.trust.checks.items() if c.ok))
    predict_key = create_api_key(p, f"demo-app-{port}", ["predict"]).key
    admin_key = create_api_key(p, f"demo-admin-{port}", ["admin"]).key
    features = list(served.schema.features)
    good = _row(st["test_df"], features)
    url = f"/v1/models/{name}:predict"
    with ServerThread(app, port) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        say(f"Serving on {srv.url} (API key shown once: {predict_key[:12]}…)")
        auth = {"Authorization": f"Bearer {predict_key}"}
        r = c.post(url, json={"instances": [good]}, headers=auth)
        say(f"authorized predict        -> {r.status_code} {r.json().get('predictions')} "
            f"p={r.json().get('probabilities')}")
        r = c.post(url, json={"instances": [good]})
        say(f"no credential             -> {r.status_code} {r.json().get('message')}")
        r = c.post(url, json={"instances": [good]}, headers={"Authorization": "Bearer bst_00000000_" + "A" * 43})
        say(f"wrong key                 -> {r.status_code} {r.json().get('message')}")
        r = c.post(f"/v1/models/{name}:explain", json={"instances": [good]}, headers=auth)
        say(f"predict key on :explain   -> {r.status_code} {r.json().get('message')}")
        numeric = next((s for s in served.schema.specs if s.kind in ("number", "integer") and s.max is not None),
                       None)
        bad = {**good, "favourite_colour": "blue"}
        if numeric is not None:
            bad[numeric.name] = (numeric.max or 0) * 100 + 1
        r = c.post(url, json={"instances": [bad]}, headers=auth)
        errs = r.json().get("errors", [])
        say(f"malformed (unknown field, out of range) -> {r.status_code}: " +
            "; ".join(f"{'.'.join(map(str, e['loc'][2:]))}: {e['msg']}" for e in errs[:2]))
        r = c.post(url, content=b'{"instances": [{"age": NaN}]}', headers={**auth, "content-type": "application/json"})
        say(f"NaN                       -> {r.status_code} {r.json().get('message')}")
        try:
            back = p.rollback(name, alias="production", reason="demo: roll back while serving")
        except BastionError as e:
            say(f"Rollback not possible: {e}")
            return
        say(f"Rolled back {ref} -> {back.ref}; the server polls the alias every {config.poll_s:g}s …")
        admin = {"Authorization": f"Bearer {admin_key}"}
        deadline = time.monotonic() + 15
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = c.get("/v1/admin/status", headers=admin).json()
            if status.get("serving") == back.ref or status.get("last_refused_reload"):
                break
            time.sleep(0.25)
        if status.get("serving") == back.ref:
            r = c.post(url, json={"instances": [good]}, headers=auth)
            say(f"[green]Switched without restart:[/] now serving {status['serving']} (version "
                f"{r.json().get('version')} answered)")
            # put the approved version back, so the stages after this one see production as they left it
            p.promote(approved, alias="production")
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and c.get("/v1/admin/status", headers=admin).json().get(
                    "serving") != approved:
                time.sleep(0.25)
            say(f"Promoted {approved} again; the server followed: serving "
                f"{c.get('/v1/admin/status', headers=admin).json().get('serving')}")
        else:
            refusal = status.get("last_refused_reload") or {}
            reasons = "; ".join(refusal.get("reasons", []))[:400]
            say(f"[yellow]The server refused to switch to {back.ref} and still serves {status.get('serving')}:[/] "
                f"{reasons}")
    journal = app.state.bastion.journal
    n = journal.seq if journal is not None else 0
    say(f"Stopped; request journal sealed with {n} entries (ids, key ids, outcomes, latency; no keys, no inputs).")
