"""`bastion ui`: serve the web dashboard (login, inventory, versions, monitoring, audit, promote/rollback)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the top-level `ui` command."""

    @app.command("ui")
    def ui(
        host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
        port: int = typer.Option(8090, "--port", help="TCP port."),
        tls_cert: str = typer.Option(None, "--tls-cert", help="PEM certificate chain for HTTPS (Secure cookies)."),
        tls_key: str = typer.Option(None, "--tls-key", help="PEM private key for HTTPS."),
        forwarded_allow_ips: str = typer.Option(
            "", "--forwarded-allow-ips",
            help="Comma-separated proxy IPs/CIDRs whose X-Forwarded-For is believed (default: none)."),
        header_timeout: float = typer.Option(10.0, "--header-timeout", help="Seconds a request head may take."),
        max_connections: int = typer.Option(4096, "--max-connections", help="Open connections in total."),
        max_per_client: int = typer.Option(256, "--max-connections-per-client", help="Open connections per address."),
        project_dir: str = typer.Option(None, "--project", help="Project folder (default: nearest above cwd)."),
    ) -> None:
        """Serve the dashboard; create users first with `bastion users add NAME --role ...`."""
        import uvicorn

        from bastion.cli._common import err_console, project
        from bastion.errors import ConfigError
        from bastion.serve._conn import ConnectionLimits, uvicorn_connection_options
        from bastion.serve.config import check_forwarded_allow_ips
        from bastion.serve.runner import forwarded_options
        from bastion.ui import create_ui_app
        from bastion.ui.users import UserStore

        proxies = check_forwarded_allow_ips(forwarded_allow_ips)
        conn = ConnectionLimits(header_timeout_s=header_timeout, max_connections=max_connections,
                                max_per_client=max_per_client)
        if bool(tls_cert) != bool(tls_key):
            raise ConfigError("--tls-cert and --tls-key go together; pass both or neither.")
        p = project(project_dir)
        if not UserStore(p).list():
            raise ConfigError("The dashboard has no users yet; add one with `bastion users add NAME --role admin`.")
        web = create_ui_app(p.root, secure_cookies=True if tls_cert else None)
        scheme = "https" if tls_cert else "http"
        err_console.print(f"Bastion dashboard on {scheme}://{host}:{port}/ (Ctrl+C to stop)")
        uvicorn.run(web, host=host, port=port, ssl_certfile=tls_cert, ssl_keyfile=tls_key, log_level="warning",
                    server_header=False, **forwarded_options(proxies), **uvicorn_connection_options(conn))
