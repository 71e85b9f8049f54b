"""Jinja templates judged the way jinja2's sandbox would: GGUF chat templates and template text files.

Templates are parsed with jinja2's own lexer and parser (never rendered), so escapes, ``~``
concatenation and filters are seen as jinja2 sees them.
"""

from __future__ import annotations

from bastion.scan.interface import Severity

TYPE_CHECKING = False  # typing stays off the scan's start-up path; annotations are strings
if TYPE_CHECKING:
    from typing import IO

    from bastion.scan.interface import ScanContext

__all__ = ["scan_text_templates", "template_danger"]


# Attributes jinja2's sandbox refuses on any object besides ``_``-prefixed ones (its UNSAFE_* sets and
# str.format, which reaches attributes through its format spec).
_UNSAFE_ATTRS = frozenset({
    "format", "format_map", "mro", "func_globals", "func_code", "func_closure", "gi_frame", "gi_code",
    "cr_frame", "cr_code", "ag_frame", "ag_code", "tb_frame", "f_globals", "f_builtins", "f_locals",
    "im_class", "im_func", "im_self", "co_code", "globals", "builtins", "popen", "system", "import_module",
})


def template_danger(template: str) -> str | None:
    """What makes ``template`` unsafe, read through jinja2's own parser, or None."""
    try:
        from jinja2 import Environment, nodes
        from jinja2.exceptions import TemplateSyntaxError
    except ImportError:  # pragma: no cover - jinja2 is a dependency
        return None
    try:
        # parsed only, never rendered: autoescape has no bearing
        env = Environment(extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do"])  # noqa: S701
        tree = env.parse(template)
    except TemplateSyntaxError:
        return None  # jinja2 would not render it either; the raw-text check still runs
    except (RecursionError, MemoryError):
        return "is too deeply nested for jinja2's parser"

    def bad_name(name: object) -> bool:
        return isinstance(name, str) and (name.startswith("_") or name in _UNSAFE_ATTRS)

    def builds_text(expr: nodes.Node) -> bool:
        # a computed subscript is a dynamic attribute name when it assembles text (``'_' ~ ...``,
        # ``'_' * 2``, filters, calls); index arithmetic such as ``loop.index0 + 1`` is not
        if isinstance(expr, nodes.Concat | nodes.Filter | nodes.Call):
            return True
        return any(isinstance(c, nodes.Const) and isinstance(c.value, str) for c in expr.find_all(nodes.Const)) \
            or any(True for _ in expr.find_all((nodes.Concat, nodes.Filter, nodes.Call)))

    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Const, nodes.Name, nodes.Call)):
        if isinstance(node, nodes.Getattr) and bad_name(node.attr):
            return f"reads the attribute {node.attr!r}"
        if isinstance(node, nodes.Getitem):
            arg = node.arg
            if isinstance(arg, nodes.Const) and bad_name(arg.value):
                return f"reads the item {arg.value!r} (a subscript falls back to attribute access)"
            if not isinstance(arg, nodes.Const) and builds_text(arg):
                return "builds an attribute name at render time (a computed subscript)"
        if isinstance(node, nodes.Filter) and node.name == "attr":
            arg0 = node.args[0] if node.args else None
            if not (isinstance(arg0, nodes.Const) and isinstance(arg0.value, str) and not bad_name(arg0.value)):
                return "uses the attr filter with a private or computed name"
        if isinstance(node, nodes.Const) and isinstance(node.value, str) and "__" in node.value:
            return f"holds the string {node.value[:40]!r}, which names Python internals"
        if isinstance(node, nodes.Name) and node.name in ("self", "__builtins__"):
            return f"uses {node.name!r}, which reaches the template's internals"
    return None


_TEXT_MAX = 1 << 20


def _template_strings(text: str) -> list[tuple[str, str]]:
    """(where, template) pairs in a text file: a tokenizer config's ``chat_template`` entries, or the
    whole text when it carries Jinja markers (standalone ``.jinja`` files, YAML configs)."""
    stripped = text.lstrip()
    if stripped.startswith("{") and not stripped.startswith(("{{", "{%", "{#")):
        import json

        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            found: list[tuple[str, str]] = []
            value = doc.get("chat_template")
            if isinstance(value, str):
                found.append(("chat_template", value))
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, dict) and isinstance(item.get("template"), str):
                        found.append((f"chat_template[{i}]", item["template"]))
            return found
    if "{{" in text or "{%" in text:
        return [("text", text)]
    return []


def scan_text_templates(stream: IO[bytes], ctx: ScanContext) -> bool:
    """Judge Jinja templates in a small text file (tokenizer_config.json, .jinja, YAML) as GGUF
    chat templates are judged. Returns True when the file was text with a template."""
    stream.seek(0)
    raw = stream.read(_TEXT_MAX + 1)
    if len(raw) > _TEXT_MAX or b"\0" in raw:
        return False
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    templates = _template_strings(text)
    for where, template in templates:
        problem = template_danger(template)
        if problem is not None:
            ctx.add("format.template-injection", Severity.CRITICAL, where,
                    f"The Jinja template ({where}) {problem}, which jinja2's sandbox refuses; a server that "
                    "renders it without the sandbox runs code (server-side template injection).",
                    "Replace the template with a reviewed one before serving the model.")
    return bool(templates)
