"""Many byte strings in one buffer (the layout of an Arrow binary column), and their base64url text.

Layout only: no cryptography here. Every cipher call goes to ``cryptography``'s AEAD classes, one value at a time.
"""

from __future__ import annotations

import binascii
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["Packed", "b64url_packed"]

_URLSAFE = bytes.maketrans(b"+/", b"-_")

U8 = NDArray[np.uint8]
I64 = NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Packed:
    """Many byte strings in one buffer, laid out like an Arrow binary column.

    Value ``i`` is ``data[offsets[i]:offsets[i + 1]]``; ``offsets`` is monotonic with ``len(values) + 1`` entries
    (it may start above 0, as an Arrow slice does).
    """

    offsets: I64
    data: U8

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def from_list(cls, values: Sequence[bytes]) -> Packed:
        """Pack a sequence of ``bytes``."""
        lengths = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
        offsets = np.zeros(len(values) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(offsets, np.frombuffer(b"".join(values), dtype=np.uint8))

    def to_list(self) -> list[bytes]:
        """The values as ``bytes`` objects."""
        raw = self.data.tobytes()
        return [raw[a:b] for a, b in itertools.pairwise(self.offsets.tolist())]


def b64url_packed(values: Sequence[bytes]) -> Packed:
    """Unpadded URL-safe base64 text of every value (what :func:`bastion.crypto._util.b64e` gives), packed."""
    b2a, table = binascii.b2a_base64, _URLSAFE
    return Packed.from_list([b2a(v, newline=False).translate(table).rstrip(b"=") for v in values])
