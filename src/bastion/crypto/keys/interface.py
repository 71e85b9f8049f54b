"""The key-provider seam: where the master key lives (file, environment, KMS) behind one Protocol.

A provider never hands out the master key; it wraps and unwraps data keys, as a KMS would.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["KeyProvider"]


@runtime_checkable
class KeyProvider(Protocol):
    """Wraps and unwraps data keys under a master key it holds.

    ``key_id`` is a public, one-way identifier of the master key (safe to log and store); ``wrap``/``unwrap``
    bind ``context`` as associated data. ``unwrap`` raises ``KeyManagementError`` with a clear message when
    the wrapped key was made by another master key or was altered.
    """

    @property
    def key_id(self) -> str: ...

    @property
    def source(self) -> str: ...

    def wrap(self, plaintext: bytes, *, context: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes: ...
