"""Run the model server with uvicorn: verify first (refuse to start, exit code 1), then one process or
several workers through the app factory, optionally with TLS.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Any

from bastion.serve.config import ENV_VAR, ServeConfig
from bastion.serve.limits import LIMITS_FILE_ENV

__all__ = ["forwarded_options", "preflight", "run_server", "uvicorn_options"]

log = logging.getLogger("bastion.serve")

WORKER_HEALTHCHECK_S = 30


def preflight(config: ServeConfig) -> Any:
    """Open the project and load the version with every trust check; raises if it may not be served."""
    from bastion.project import open_project
    from bastion.serve.loader import load_trusted

    project = open_project(config.project_root)
    try:
        loaded = load_trusted(project, config.ref, margin=config.margin, max_rows=config.limits.max_rows,
                              max_depth=config.limits.max_depth, target=config.target)
    except BaseException:
        project.close()
        raise
    return project, loaded


def uvicorn_options(config: ServeConfig) -> dict[str, Any]:
    """uvicorn settings: connection guard (see :mod:`bastion.serve._conn`), forwarded headers only from the
    configured proxies (none by default), no server header."""
    from bastion.serve._conn import uvicorn_connection_options

    opts: dict[str, Any] = {
        "host": config.host, "port": config.port, "log_config": None, "access_log": False,
        "server_header": False, "timeout_graceful_shutdown": 15,
        # uvicorn's supervisor kills a worker that misses its health ping for this long and starts another
        # (default 5 s): on a loaded machine a worker still starting (spawn, imports, model load) misses it
        # again and again, and the server never comes up. Only a hung worker waits longer to be replaced.
        "timeout_worker_healthcheck": WORKER_HEALTHCHECK_S,
        **forwarded_options(config.forwarded_allow_ips),
        **uvicorn_connection_options(config.connections),
    }
    if config.tls_cert:
        opts.update(ssl_certfile=config.tls_cert, ssl_keyfile=config.tls_key)
    return opts


def forwarded_options(allow_ips: tuple[str, ...]) -> dict[str, Any]:
    """uvicorn's proxy-header settings: off unless proxies are named (uvicorn would otherwise trust
    127.0.0.1, or whatever ``FORWARDED_ALLOW_IPS`` says, and let any local forwarder choose the client address)."""
    if not allow_ips:
        return {"proxy_headers": False, "forwarded_allow_ips": ""}
    return {"proxy_headers": True, "forwarded_allow_ips": ",".join(allow_ips)}


def run_server(config: ServeConfig) -> None:
    """Serve until interrupted (SIGINT/SIGTERM shut down gracefully: journals sealed, logs flushed)."""
    import uvicorn

    from bastion.serve._logging import configure_json_logging

    configure_json_logging()
    project, loaded = preflight(config)
    if config.workers == 1:
        from bastion.serve.app import create_app

        app = create_app(config, project=project, preloaded=loaded)
        uvicorn.run(app, **uvicorn_options(config))
        return
    project.close()
    os.environ[ENV_VAR] = config.to_json()
    mp_dir = tempfile.mkdtemp(prefix="bastion-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = mp_dir
    # Rate and concurrency limits shared by the workers: one memory-mapped table in a private (0700) folder
    limits_dir = tempfile.mkdtemp(prefix="bastion-limits-")
    os.environ[LIMITS_FILE_ENV] = os.path.join(limits_dir, "limits")
    try:
        uvicorn.run("bastion.serve.app:app_from_env", factory=True, workers=config.workers,
                    **uvicorn_options(config))
    finally:
        shutil.rmtree(mp_dir, ignore_errors=True)
        shutil.rmtree(limits_dir, ignore_errors=True)
