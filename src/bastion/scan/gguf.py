"""GGUF model files: header sanity (version, counts, string lengths) and the chat template.

Jinja chat templates in GGUF metadata have carried server-side template injection payloads.
"""

from __future__ import annotations

import re
import struct

from bastion.scan.interface import FormatScanner, Severity

TYPE_CHECKING = False  # typing stays off the scan's start-up path; annotations are strings
if TYPE_CHECKING:
    from typing import IO

    from bastion.scan.interface import ScanContext

__all__ = ["GgufScanner"]

_REM = "Obtain the model from its original publisher and scan it again."
# value type -> fixed byte size (8 = string, 9 = array handled separately)
_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
# Known SSTI payloads all reach Python internals through dunder attributes (``cycler.__init__.
# __globals__.os.popen``); ordinary templates use none. Names can also be assembled at render time
# (``cycler|attr('_'*2 ~ 'init' ~ '_'*2)``, ``x['_' ~ ...]``), so the ``attr`` filter, subscripts
# with underscore-leading strings and private attributes count too. ``namespace()`` and ``loop`` stay legal.
_TEMPLATE_DANGER = re.compile(
    r"__[A-Za-z_]+__|\.popen\b|\bsubprocess\b|\bos\.system\b|\b(?:eval|exec)\s*\(|\bimport_module\b"
    r"|\|\s*attr\b|\[\s*[\"']_|\.\s*_[A-Za-z_]"
)


class _Truncated(Exception):
    pass


class GgufScanner(FormatScanner):
    """GGUF v1-v3 (and a note for the older GGML/GGJT containers)."""

    name = "gguf"

    def sniff(self, head: bytes) -> bool:
        return head[:4] in (b"GGUF", b"GGML", b"GGJT", b"GGLA")

    def scan(self, stream: IO[bytes], ctx: ScanContext) -> None:
        magic = stream.read(4)
        if magic != b"GGUF":
            ctx.add("gguf.legacy", Severity.INFO, magic.decode("latin-1"), "A pre-GGUF llama.cpp container; only "
                    "its magic was checked.", "Convert to GGUF.", offset=0)
            return
        self._pos = 4
        self._stream = stream
        self._ctx = ctx
        try:
            self._scan(ctx)
        except _Truncated:
            ctx.add("gguf.malformed", Severity.HIGH, "GGUF header", "The GGUF header ends early or claims more "
                    "data than the file holds.", _REM, offset=self._pos)

    def _read(self, n: int) -> bytes:
        if self._ctx.size is not None and self._pos + n > self._ctx.size:
            raise _Truncated
        data = self._stream.read(n)
        if len(data) != n:
            raise _Truncated
        self._pos += n
        return data

    def _u(self, fmt: str) -> int:
        s = struct.Struct("<" + fmt)
        return int(s.unpack(self._read(s.size))[0])

    def _string(self, wide: bool) -> bytes:
        n = self._u("Q" if wide else "I")
        if n > self._ctx.limits.max_header_bytes:
            raise _Truncated
        return self._read(n)

    def _skip(self, n: int) -> None:
        while n > 0:
            step = min(n, 1 << 20)
            self._read(step)
            n -= step

    def _scan(self, ctx: ScanContext) -> None:
        version = self._u("I")
        if version not in (1, 2, 3):
            ctx.add("gguf.malformed", Severity.HIGH, f"version {version}", f"Unknown GGUF version {version}.",
                    _REM, offset=4)
            return
        wide = version >= 2
        n_tensors = self._u("Q" if wide else "I")
        n_kv = self._u("Q" if wide else "I")
        size = ctx.size or 0
        if size and (n_tensors > size // 8 or n_kv > size // 8):
            ctx.add("gguf.malformed", Severity.HIGH, "counts", f"The header claims {n_tensors} tensors and "
                    f"{n_kv} metadata entries, more than a {size}-byte file can hold (allocation bomb).", _REM,
                    offset=8)
            return
        for _ in range(n_kv):
            ctx.check_time()
            key = self._string(wide).decode("utf-8", "replace")
            vtype = self._u("I")
            if key.startswith("tokenizer.chat_template") and vtype == 8:
                start = self._pos
                self._template(key, self._string(wide).decode("utf-8", "replace"), start)
                continue
            self._value(vtype, wide, key)
        for _ in range(n_tensors):
            ctx.check_time()
            self._string(wide)
            n_dims = self._u("I")
            if n_dims > 8:
                ctx.add("gguf.malformed", Severity.HIGH, f"{n_dims} dims", "A tensor claims more than 8 "
                        "dimensions.", _REM, offset=self._pos)
                return
            for _d in range(n_dims):
                self._u("Q" if wide else "I")
            self._u("I")
            offset = self._u("Q")
            if size and offset > size:
                ctx.add("gguf.malformed", Severity.HIGH, "tensor offset", f"A tensor starts at offset {offset}, "
                        f"past the end of the {size}-byte file.", _REM, offset=self._pos)
                return

    def _value(self, vtype: int, wide: bool, key: str) -> None:
        if vtype in _SIZES:
            self._read(_SIZES[vtype])
        elif vtype == 8:
            self._string(wide)
        elif vtype == 9:
            item = self._u("I")
            count = self._u("Q" if wide else "I")
            if self._ctx.size is not None and count > self._ctx.size:
                raise _Truncated
            if item in _SIZES:
                self._skip(count * _SIZES[item])
            else:
                for _ in range(count):
                    self._value(item, wide, key)
        else:
            self._ctx.add("gguf.malformed", Severity.HIGH, f"metadata {key!r}", f"Unknown value type {vtype}.",
                          _REM, offset=self._pos)
            raise _Truncated

    def _template(self, key: str, template: str, offset: int) -> None:
        # Judge the template as jinja2 reads it: its own lexer and parser decode escapes (\x5f\x5f),
        # fold nothing away, and expose every attribute, subscript, filter and call; the regex over the
        # raw text stays as a cross-check for templates jinja2 cannot parse.
        from bastion.scan.templates import template_danger

        tree_hit = template_danger(template)
        hit = _TEMPLATE_DANGER.search(template)
        if tree_hit is not None:
            self._ctx.add("gguf.chat-template-injection", Severity.CRITICAL, key,
                          f"The Jinja chat template {tree_hit}, which jinja2's sandbox refuses; rendering it in an "
                          "unsandboxed Jinja environment runs code (server-side template injection).",
                          "Replace the chat template with a reviewed one before serving the model.", offset=offset)
        elif hit is not None:
            self._ctx.add("gguf.chat-template-injection", Severity.CRITICAL, key,
                          f"The Jinja chat template uses {hit.group(0)!r}, a sandbox-escape construct; rendering "
                          "it in an unsandboxed Jinja environment runs code (server-side template injection).",
                          "Replace the chat template with a reviewed one before serving the model.", offset=offset)
        else:
            self._ctx.add("gguf.chat-template", Severity.INFO, key,
                          "The model carries a Jinja chat template; render it only in a sandboxed environment.",
                          "No action needed if the server sandboxes templates.", offset=offset)

