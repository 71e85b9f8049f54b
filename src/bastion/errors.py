"""One exception hierarchy for Bastion.

The library raises these; only the CLI turns them into exit codes
(0 ok, 1 checks failed, 2 usage or input error, 3 internal error).
"""

from __future__ import annotations

__all__ = [
    "EXIT_CHECKS_FAILED",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_USAGE",
    "AuthError",
    "BastionError",
    "ConfigError",
    "DataError",
    "IntegrityError",
    "KeyManagementError",
    "NotFoundError",
    "PolicyViolation",
    "RegistryError",
    "ScanError",
    "StoreError",
    "UnsafeArtifactError",
    "VerificationError",
]

EXIT_OK = 0
EXIT_CHECKS_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


class BastionError(Exception):
    """Root of every error Bastion raises on purpose.

    ``exit_code`` is what the CLI exits with when this error reaches it.
    """

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(BastionError):
    """A setting, a settings file or a policy file is wrong."""


class StoreError(BastionError):
    """The metadata database or the artifact store cannot be used."""


class IntegrityError(StoreError):
    """Stored content does not match its recorded digest (corruption or tampering)."""

    exit_code = EXIT_CHECKS_FAILED


class RegistryError(BastionError):
    """A registry operation is not allowed (bad name, deleted version, no history)."""


class NotFoundError(RegistryError):
    """A referenced dataset, model, version or alias does not exist."""


class DataError(BastionError):
    """Input data cannot be read or does not have the expected shape."""


class KeyManagementError(BastionError):
    """A key is missing, wrong, revoked or cannot be unwrapped."""


class ScanError(BastionError):
    """An artifact cannot be scanned at all (unreadable input)."""


class UnsafeArtifactError(BastionError):
    """An artifact has scan findings that forbid the requested operation."""

    exit_code = EXIT_CHECKS_FAILED


class VerificationError(BastionError):
    """A signature, attestation, digest or audit chain failed verification."""

    exit_code = EXIT_CHECKS_FAILED


class PolicyViolation(BastionError):
    """A gate, promotion rule or validation contract was not met."""

    exit_code = EXIT_CHECKS_FAILED


class AuthError(BastionError):
    """A caller is not authenticated or lacks the role for an action."""
