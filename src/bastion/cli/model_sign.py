"""`bastion model sign|verify` (owned by the signing work)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from bastion.cli._common import console, err_console, print_json, progress_bar, project
from bastion.errors import DataError


def _read_bundle(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise DataError(f"Cannot read the bundle {path}: {e.strerror}.") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"The bundle {path} is not JSON: {e}.") from e


def _print_status(status: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(status)
    elif status["valid"]:
        console.print(
            f"[bold green]valid[/]: signed by {status.get('signer')} ({status.get('key_fingerprint')}), "
            f"{status.get('files_checked')} file(s) checked.",
            highlight=False,
        )
    else:
        err_console.print(f"[bold red]invalid[/]: {status['reason']}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `sign` and `verify` to the `model` group."""

    @app.command("sign")
    def sign(
        ref: str = typer.Argument(..., help="Model version NAME:VERSION or NAME@ALIAS."),
        key: str = typer.Option(None, "--key", help="Signing key name in the keyring (default: the only one)."),
        key_file: str = typer.Option(None, "--key-file", help="PEM private key file instead of the keyring."),
        cert: str = typer.Option(None, "--cert", help="PEM certificate chain (leaf first) for own-CA signing."),
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """Sign a model version (OpenSSF Model Signing bundle) and store the signature with it."""
        from bastion.crypto.signing.keys import KEY_ENV, PASSPHRASE_ENV, load_signing_key
        from bastion.gates.signatures import sign_version

        p = project()
        passphrase = os.environ.get(PASSPHRASE_ENV)
        if not passphrase and not key_file and not os.environ.get(KEY_ENV):
            passphrase = typer.prompt("Passphrase for the signing key", hide_input=True)
        signing_key = load_signing_key(p, key, passphrase=passphrase, key_file=key_file, certificate_chain=cert)
        with progress_bar("Hashing") as bar:
            doc = sign_version(p, ref, key=signing_key, progress=bar)
        if json_out:
            print_json(doc)
        else:
            console.print(
                f"Signed [bold]{doc['model']}[/] with key {doc['key']['name']} ({doc['key']['fingerprint']}), "
                f"{doc['files']} file(s).",
                highlight=False,
            )

    @app.command("verify")
    def verify(
        target: str = typer.Argument(..., help="Model version NAME:VERSION / NAME@ALIAS, or a model path."),
        bundle: str = typer.Option(None, "--bundle", help="Signature bundle file (required for a path)."),
        public_key: list[str] = typer.Option(None, "--public-key", help="Trusted PEM public key (repeatable)."),
        ca_cert: list[str] = typer.Option(None, "--ca-cert", help="Trusted PEM CA certificate (repeatable)."),
        allowed_signer: list[str] = typer.Option(
            None, "--allowed-signer", help="Accept only this signer: key:NAME, sha256:FP, e-mail/URI/DNS, cn:NAME."
        ),
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """Verify a model version (or a model folder/file) against its signature; exit 1 when it fails."""
        from bastion.crypto.signing.trust import TrustStore
        from bastion.crypto.signing.verify import ModelMismatchError, verify_model
        from bastion.errors import ConfigError, VerificationError
        from bastion.gates.signatures import verify_version

        extra = TrustStore.from_pem(public_keys=public_key or [], ca_certificates=ca_cert or [])
        is_path = Path(target).exists() and ":" not in target and "@" not in target
        p = None
        try:
            p = project()
        except ConfigError:
            if not is_path:
                raise
        trust = (TrustStore.from_project(p) if p is not None else TrustStore()).merged(extra)
        if allowed_signer:
            trust = trust.with_allowed_signers(allowed_signer)
        if not is_path and bundle is None:
            with progress_bar("Verifying") as bar:
                status = verify_version(p, target, trust=trust, progress=bar).to_dict()
        else:
            if bundle is None:
                raise DataError(f"{target} is a path: pass its signature with --bundle FILE.")
            doc = _read_bundle(bundle)
            if isinstance(doc, dict) and "bundle" in doc and "dsseEnvelope" not in doc:
                doc = doc["bundle"]  # a Bastion signature document: the OMS bundle is inside
            path = Path(target) if is_path else p.model_path(target)  # type: ignore[union-attr]
            try:
                with progress_bar("Verifying") as bar:
                    res = verify_model(path, doc, trust, progress=bar)
                status = res.to_dict() | {
                    "reason": "signature valid",
                    "signer": res.signer.identity,
                    "key_fingerprint": res.signer.key_fingerprint,
                }
            except ModelMismatchError as e:
                status = {
                    "valid": False, "reason": str(e), "missing": list(e.missing), "extra": list(e.extra),
                    "mismatched": list(e.mismatched),
                }
            except VerificationError as e:
                status = {"valid": False, "reason": str(e)}
        _print_status(status, json_out)
        if not status["valid"]:
            raise typer.Exit(1)
