"""Model signing in the OpenSSF Model Signing (OMS) format, statement signing, keys and trust.

Sign with an EC key (P-256/P-384) or an own-CA certificate; verification is explicit about whom it trusts.
"""

from __future__ import annotations

from bastion.crypto.signing.hashing import hash_file, hash_model
from bastion.crypto.signing.keys import (
    KeyRecord,
    SigningKey,
    init_signing_key,
    list_signing_keys,
    load_signing_key,
    public_key_fingerprint,
    revoke_signing_key,
    rotate_signing_key,
)
from bastion.crypto.signing.oms import (
    BUNDLE_MEDIA_TYPE,
    MODEL_PREDICATE_TYPE,
    STATEMENT_TYPE,
    build_model_statement,
    sign_model,
)
from bastion.crypto.signing.statements import sign_statement, verify_statement, verify_statement_detailed
from bastion.crypto.signing.trust import TrustedKey, TrustStore
from bastion.crypto.signing.verify import (
    ModelMismatchError,
    ModelVerification,
    SignerInfo,
    VerifiedStatement,
    verify_bundle,
    verify_model,
)

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "MODEL_PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "KeyRecord",
    "ModelMismatchError",
    "ModelVerification",
    "SignerInfo",
    "SigningKey",
    "TrustStore",
    "TrustedKey",
    "VerifiedStatement",
    "build_model_statement",
    "hash_file",
    "hash_model",
    "init_signing_key",
    "list_signing_keys",
    "load_signing_key",
    "public_key_fingerprint",
    "revoke_signing_key",
    "rotate_signing_key",
    "sign_model",
    "sign_statement",
    "verify_bundle",
    "verify_model",
    "verify_statement",
    "verify_statement_detailed",
]
