"""`bastion serve NAME@ALIAS`: the secure model server (verify, then serve with auth, limits and audit)."""

from __future__ import annotations

import typer


def _check_port(host: str, port: int) -> None:
    """Fail fast, in one line (exit 2), when the address cannot be bound, before the model is loaded."""
    import errno
    import socket

    from bastion.errors import ConfigError

    if not 0 <= port < 65536:
        raise ConfigError(f"--port must be between 0 (any free port) and 65535; got {port}.")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ConfigError(f"Cannot listen on host {host!r}: {e.strerror}. Give an IP address or a resolvable name.") \
            from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
        try:
            s.bind(addr)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ConfigError(f"Port {port} on {host} is already in use; stop the process using it or choose "
                                  "another --port.") from None
            raise ConfigError(f"Cannot listen on {host}:{port}: {e.strerror}.") from None


def register(app: typer.Typer) -> None:
    """Add the top-level `serve` command."""

    @app.command("serve")
    def serve(
        ref: str = typer.Argument(..., help="Model to serve by alias, e.g. readmission@production."),
        host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
        port: int = typer.Option(8080, "--port", help="TCP port."),
        workers: int = typer.Option(1, "--workers", help="Server processes (each verifies and loads the model)."),
        tls_cert: str = typer.Option(None, "--tls-cert", help="PEM certificate chain for HTTPS."),
        tls_key: str = typer.Option(None, "--tls-key", help="PEM private key for HTTPS."),
        poll: float = typer.Option(2.0, "--poll", help="Seconds between alias checks for hot reload (0: off)."),
        margin: float = typer.Option(0.1, "--margin", help="Allowed distance outside training ranges (fraction)."),
        target: str = typer.Option(None, "--target", help="Target column of the training dataset (not an input)."),
        rate: float = typer.Option(1000.0, "--rate", help="Requests per second per key (0: no rate limit)."),
        burst: int = typer.Option(200, "--burst", help="Burst size per key."),
        concurrency: int = typer.Option(64, "--concurrency", help="Requests in flight per key."),
        timeout: float = typer.Option(10.0, "--timeout", help="Request timeout in seconds."),
        max_rows: int = typer.Option(1000, "--max-rows", help="Rows per request."),
        max_body: int = typer.Option(1_048_576, "--max-body", help="Request body bytes."),
        audit_durability: str = typer.Option(
            "write", "--audit-durability",
            help="'write': journal handed to the kernel before each response (survives a crash); "
                 "'fsync': flushed to disk first (survives power loss, slower).",
        ),
        no_prediction_log: bool = typer.Option(False, "--no-prediction-log", help="Do not log inputs for monitoring."),
        ui: bool = typer.Option(False, "--ui", help="Also serve the dashboard at /ui (its own login)."),
        jwks: str = typer.Option(None, "--jwks", help="JWKS file or URL: also accept JWT bearer tokens."),
        jwt_issuer: str = typer.Option(None, "--jwt-issuer", help="Required 'iss' of JWTs."),
        jwt_audience: str = typer.Option(None, "--jwt-audience", help="Required 'aud' of JWTs."),
        forwarded_allow_ips: str = typer.Option(
            "", "--forwarded-allow-ips",
            help="Comma-separated proxy IPs/CIDRs whose X-Forwarded-For is believed (default: none)."),
        header_timeout: float = typer.Option(10.0, "--header-timeout", help="Seconds a request head may take."),
        keep_alive: float = typer.Option(5.0, "--keep-alive", help="Seconds an idle keep-alive connection stays."),
        max_connections: int = typer.Option(4096, "--max-connections",
                                            help="Open connections per worker (idle ones are closed first)."),
        max_per_client: int = typer.Option(256, "--max-connections-per-client",
                                           help="Open connections per client address and worker."),
        project_dir: str = typer.Option(None, "--project", help="Project folder (default: nearest above cwd)."),
    ) -> None:
        """Serve a model by alias after verifying digest, signature, scan and gate; exit 1 if refused."""
        from bastion.config import load_settings
        from bastion.errors import ConfigError
        from bastion.serve import LimitSettings, ServeConfig, run_server
        from bastion.serve._conn import ConnectionLimits
        from bastion.serve._jwt import JwtSettings

        _check_port(host, port)
        jwt = None
        if jwks:
            if not jwt_issuer or not jwt_audience:
                raise ConfigError("--jwks needs --jwt-issuer and --jwt-audience (tokens are checked against both).")
            jwt = JwtSettings(jwks=jwks, issuer=jwt_issuer, audience=jwt_audience)
        config = ServeConfig(
            ref=ref, project_root=str(load_settings(project_dir).root), host=host, port=port, workers=workers,
            tls_cert=tls_cert, tls_key=tls_key, poll_s=poll, margin=margin, target=target,
            limits=LimitSettings(rate=rate, burst=burst, concurrency=concurrency, timeout_s=timeout,
                                 max_rows=max_rows, max_body_bytes=max_body),
            audit_durability=audit_durability, prediction_log=not no_prediction_log, jwt=jwt, ui=ui,
            connections=ConnectionLimits(header_timeout_s=header_timeout, keep_alive_s=keep_alive,
                                         max_connections=max_connections, max_per_client=max_per_client),
            forwarded_allow_ips=tuple(forwarded_allow_ips.split(",")) if forwarded_allow_ips else (),
        )
        run_server(config)
