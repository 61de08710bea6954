"""Resolve cross-references to re-exported names of the lowrank API.

Every public object is documented once, in the module that defines it (for example
``lowrank.theory.svm.cross_entropy_limit``), but users and docstrings also name it by
the subpackage that re-exports it (``lowrank.theory.cross_entropy_limit``). On a
``missing-reference`` event this extension imports the target, finds the documented
name that is the same object, and links there. Unknown names are left alone (Sphinx
then renders them as plain text, as it would without the extension).
"""

from __future__ import annotations

import importlib
from typing import Any

from sphinx.util import logging
from sphinx.util.nodes import make_refnode

logger = logging.getLogger(__name__)

_PY_OBJTYPES = ("function", "class", "exception", "method", "property", "attribute", "data",
                "module")


def _resolve(dotted: str) -> Any:
    """Import ``dotted`` (module path, then attribute chain); raise LookupError if absent."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                raise LookupError(dotted)
            obj = getattr(obj, attr)
        return obj
    raise LookupError(dotted)


def _candidates(domain, target: str) -> list[tuple[str, Any]]:
    last = target.rsplit(".", 1)[-1]
    return [(name, entry) for name, entry in domain.objects.items()
            if name.rsplit(".", 1)[-1] == last and entry.objtype in _PY_OBJTYPES]


def _missing_reference(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    modname = node.get("py:module")
    names = [target]
    if modname and not target.startswith("lowrank"):
        names.append(f"{modname}.{target}")
    domain = env.get_domain("py")
    for name in names:
        if not name.startswith("lowrank"):
            continue
        try:
            obj = _resolve(name)
        except Exception:  # noqa: BLE001 - an unknown name stays unresolved
            continue
        for cand, entry in _candidates(domain, name):
            try:
                same = _resolve(cand) is obj
            except Exception:  # noqa: BLE001
                continue
            if same:
                return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id,
                                    contnode, cand)
    # A hand-written page (not the generated API pages, whose docstrings belong to the
    # package) must not name a lowrank object that does not exist or is not documented.
    if target.startswith("lowrank") and not node["refdoc"].startswith("api/"):
        logger.warning("unresolved reference to %s (not a documented lowrank name)", target,
                       location=node, type="lowrank", subtype="ref")
    return None


def _patch_autosummary_summary() -> None:
    """Make autosummary's one-line summaries stop at a sentence end outside inline markup.

    ``sphinx.ext.autosummary.extract_summary`` (Sphinx 9.0) splits the first paragraph at
    ``". "`` and means to extend the sentence until it parses cleanly, but re-parses the
    whole paragraph instead of the candidate sentence; a literal such as ``w . x + b``
    is then cut in two and the table gets an "Inline literal start-string without
    end-string" warning. This wrapper re-checks the candidate itself.
    """
    from docutils import nodes
    from sphinx.ext import autosummary as _as

    original = _as.extract_summary
    if getattr(original, "_lowrank_patched", False):
        return

    def extract_summary(doc, settings):
        summary = original(doc, settings)
        if not summary:
            return summary
        if not any(_as._parse_summary([summary], settings).findall(nodes.system_message)):
            return summary
        stanza = []
        for line in doc:
            if not line.strip():
                if stanza:
                    break
                continue
            stanza.append(line.strip())
        sentences = _as.periods_re.split(" ".join(stanza))
        for i in range(1, len(sentences) + 1):
            candidate = ". ".join(sentences[:i]).rstrip(".") + "."
            parsed = _as._parse_summary([candidate], settings)
            if not any(parsed.findall(nodes.system_message)):
                return _as.literal_re.sub(".", candidate)
        return summary

    extract_summary._lowrank_patched = True
    _as.extract_summary = extract_summary


def _drop_type_docstrings(app, what, name, obj, options, lines) -> None:
    """Constants without a doc comment would show their type's docstring (tuple, dict)."""
    if what not in ("data", "attribute") or not lines:
        return
    type_doc = getattr(type(obj), "__doc__", None)
    if not isinstance(type_doc, str):
        return
    first = type_doc.strip().splitlines()[0].strip() if type_doc.strip() else None
    if first and lines[0].strip() == first:
        lines[:] = []


def setup(app):
    _patch_autosummary_summary()
    app.connect("autodoc-process-docstring", _drop_type_docstrings, priority=100)
    app.connect("missing-reference", _missing_reference)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
