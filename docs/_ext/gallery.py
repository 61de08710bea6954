"""Studies gallery: show a committed figure with its command and the key numbers of its JSON.

Every number the gallery shows is read at build time from the JSON (and CSV) that the
study script wrote beside its figure in ``figures/``, so the pages never hold a number
that no command produced. A figure that has not been generated yet is announced as such
(without a warning), so the documentation builds at every stage of the repository.

Directive (MyST)::

    ```{lowrank-figure} boundary_2d
    :command: python studies/boundary_2d.py --out figures
    :caption: Decision boundaries on an offset line.
    :table: dataset, method, T, measured_margin, predicted_margin
    :table-where: method != ce_limit_solver
    :table-max-rows: 40

    optimal margin, two points = datasets[key=paper_pair].predicted.optimal_margin
    GD margins = datasets[key=paper_pair].gd[*].margin
    ```

The argument is a file stem in ``figures/`` or a glob (``image_*``) that renders every
match. Options:

``command``
    The command that produces the figure (default ``python studies/<stem>.py``).
``caption``
    Text under the figure.
content (or the ``keys`` option)
    The key numbers: one ``label = path`` per line. A path walks the JSON: ``a.b``
    (dict keys), ``a[0]``, ``a[-1]`` (list items), ``a[key=value]`` (the first list item
    whose ``key`` equals ``value``), ``a[*].b`` (all items: rendered as a list). A path
    absent from the JSON is shown as "not in the JSON" rather than breaking the build.
    Without key lines the JSON's ``summary`` mapping (if any) is shown.
``command`` fields
    ``{path}`` in the command is replaced by that JSON value (shell-quoted); a run whose
    ``mode`` is ``quick`` or ``tiny`` gets ``--quick`` / ``--tiny`` appended.
``table``
    Comma-separated columns of the CSV to render as a table; shell-style patterns
    (``ce_ratio_T*``, ``*``) select every matching column in the CSV's order.
``table-where``
    ``column = value`` or ``column != value`` conditions, separated by ``;``.
``table-max-rows``
    Upper bound on the rows shown (default 60); the page says how many were left out.
``only-table``
    Render only the table (for a second table of the same figure).

The run's top-level scalar fields (``mode``, ``seed``, ``seconds``, ...), short top-level
lists (budgets, sweeps) and the entries of its ``settings`` / ``config`` / ``protocol``
mappings are always listed under *Run settings*. A figure ``<stem>_<suffix>.png`` without
a JSON of its own (a second panel, such as ``..._spectrum``) is shown with ``<stem>``.
"""

from __future__ import annotations

import csv
import fnmatch
import glob
import json
import math
import os
import re
import shlex
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]
#: Where the figures are read from (``LOWRANK_DOCS_FIGURES`` overrides, for trying a quick run).
FIGURES = Path(os.environ.get("LOWRANK_DOCS_FIGURES", ROOT / "figures")).resolve()

_MISSING = object()
_SEGMENT = re.compile(r"([^.\[\]]+)|\[([^\]]*)\]")


def format_number(value: Any) -> str:
    """Format a JSON value for a page: floats to 4 significant digits, ints as they are."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}".replace(",", "\u2009") if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value == 0:
            return "0"
        if abs(value) >= 1e5 or abs(value) < 1e-3:
            return f"{value:.3e}"
        return f"{value:.4g}"
    if value is None:
        return "–"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_number(v) for v in value) + "]"
    if isinstance(value, str):
        number = _as_number(value)
        return format_number(number) if number is not None else value
    if isinstance(value, dict):
        return ", ".join(f"{k}: {format_number(v)}" for k, v in value.items())
    return str(value)


def _as_number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def lookup(obj: Any, path: str) -> Any:
    """Walk ``obj`` along ``path`` (see the module docstring); ``_MISSING`` if absent."""
    cur = [obj]
    spread = False
    for m in _SEGMENT.finditer(path.strip()):
        key, sel = m.group(1), m.group(2)
        nxt = []
        for item in cur:
            if key is not None:
                if isinstance(item, dict) and key in item:
                    nxt.append(item[key])
                continue
            if not isinstance(item, list):
                continue
            sel = sel.strip()
            if sel == "*":
                nxt.extend(item)
                spread = True
            elif re.fullmatch(r"-?\d+", sel):
                i = int(sel)
                if -len(item) <= i < len(item):
                    nxt.append(item[i])
            elif "=" in sel:
                k, v = (s.strip() for s in sel.split("=", 1))
                for el in item:
                    if isinstance(el, dict) and k in el and str(el[k]) == v:
                        nxt.append(el)
                        break
        cur = nxt
        if not cur:
            return _MISSING
    if not cur:
        return _MISSING
    return cur if spread else cur[0]


def _is_setting(value: Any) -> bool:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return not (isinstance(value, str) and len(value) > 80)
    return isinstance(value, list) and 0 < len(value) <= 20 and all(
        isinstance(x, (int, float, str)) and not isinstance(x, bool) for x in value)


#: Top-level mappings of a study's JSON whose entries are listed as run settings.
SETTINGS_KEYS = ("settings", "config", "protocol")


def run_settings(data: dict) -> list[tuple[str, Any]]:
    """Top-level scalars and short lists of a study's JSON, and those of its ``settings``.

    Mappings named in :data:`SETTINGS_KEYS` are flattened (``protocol.model.width``).
    """
    out: list[tuple[str, Any]] = []

    def walk(prefix: str, mapping: dict, depth: int) -> None:
        for k, v in mapping.items():
            if _is_setting(v):
                out.append((f"{prefix}{k}", v))
            elif isinstance(v, dict) and depth < 3:
                walk(f"{prefix}{k}.", v, depth + 1)

    for k, v in data.items():
        if _is_setting(v):
            out.append((k, v))
        elif k in SETTINGS_KEYS and isinstance(v, dict):
            walk(f"{k}.", v, 1)
    return out


def fill_command(command: str, data: Any) -> str:
    """Replace ``{path}`` fields of a command by values of the JSON (left as is if absent)."""
    def sub(m: re.Match) -> str:
        value = lookup(data, m.group(1))
        return m.group(0) if value is _MISSING else shlex.quote(str(value))

    command = re.sub(r"\{([^{}\s]+)\}", sub, command)
    # a run in a reduced mode says so in its command
    mode = lookup(data, "mode")
    if mode is _MISSING:
        mode = lookup(data, "protocol.mode")
    if mode in ("quick", "tiny") and f"--{mode}" not in command.split():
        command += f" --{mode}"
    return command


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _where(rows: list[dict[str, str]], spec: str) -> list[dict[str, str]]:
    for cond in filter(None, (c.strip() for c in spec.split(";"))):
        if "!=" in cond:
            col, val = (s.strip() for s in cond.split("!=", 1))
            rows = [r for r in rows if r.get(col, "") != val]
        elif "=" in cond:
            col, val = (s.strip() for s in cond.split("=", 1))
            rows = [r for r in rows if r.get(col, "") == val]
    return rows


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("`", "\\`").replace("*", "\\*")


def _group(stems: set[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Split stems into figures with results and companion PNGs (``<stem>_spectrum``).

    A stem without its own JSON whose name extends a stem with a JSON (``<stem>_...``) is
    shown with that figure; the longest such prefix wins.
    """
    with_json = {s for s in stems if (FIGURES / f"{s}.json").exists()}
    main, extras = [], {}
    for s in sorted(stems):
        if s in with_json:
            main.append(s)
            continue
        owners = [t for t in with_json if s.startswith(t + "_")]
        if owners:
            extras.setdefault(max(owners, key=len), []).append(s)
        elif (FIGURES / f"{s}.png").exists() or not with_json:
            main.append(s)
    return main, extras


class LowrankFigure(SphinxDirective):
    """The ``lowrank-figure`` directive (see the module docstring)."""

    required_arguments = 1
    optional_arguments = 0
    has_content = True
    option_spec = {
        "command": directives.unchanged,
        "caption": directives.unchanged,
        "keys": directives.unchanged,
        "table": directives.unchanged,
        "table-where": directives.unchanged,
        "table-max-rows": directives.nonnegative_int,
        "only-table": directives.flag,
    }

    def run(self) -> list[nodes.Node]:
        pattern = self.arguments[0]
        if any(ch in pattern for ch in "*?["):
            found = {Path(p).stem for ext in ("json", "png")
                     for p in glob.glob(str(FIGURES / f"{pattern}.{ext}"))}
            found = {s for s in found if not s.endswith("_cache") and "." not in s}
        else:
            found = {pattern} | {Path(p).stem for p in glob.glob(str(FIGURES / f"{pattern}_*.png"))}
        stems, extras = _group(found)
        # Re-read this page when a file of the figure changes; the folder itself is a
        # dependency too (Sphinx re-reads a page whose dependency is not a file), so a
        # figure that appears later is picked up by an incremental build.
        self.env.note_dependency(str(FIGURES))
        for stem in found:
            for ext in ("json", "png", "csv"):
                path = FIGURES / f"{stem}.{ext}"
                if path.exists():
                    self.env.note_dependency(str(path))
        if not stems:
            cmd = self.options.get("command", f"python studies/{pattern}.py")
            cmd = re.sub(r"\{([^{}\s]+)\}", lambda m: "<" + m.group(1).split(".")[-1] + ">", cmd)
            return self._parse([
                f"*No figure matching* ``figures/{pattern}`` *has been generated yet. "
                f"It is produced by* ``{cmd}``.", ""])
        out: list[nodes.Node] = []
        several = len(stems) > 1 or pattern not in stems
        for stem in stems:
            out.extend(self._one(stem, extras.get(stem, []), several=several))
        return out

    def _parse(self, lines: list[str]) -> list[nodes.Node]:
        """Parse reStructuredText lines (wrapped in ``eval-rst`` inside a MyST page)."""
        if type(self.state).__module__.startswith("myst_parser"):
            fence = "`" * 6
            lines = [f"{fence}{{eval-rst}}", *lines, fence]
        container = nodes.container(classes=["lowrank-figure"])
        self.state.nested_parse(StringList(lines, source=self.get_source_info()[0]),
                                self.content_offset, container)
        return [container]

    def _image(self, png: Path, caption: str | None) -> list[str]:
        docdir = Path(self.env.doc2path(self.env.docname)).parent
        rel = os.path.relpath(png, docdir).replace(os.sep, "/")
        lines = [f".. figure:: {rel}", f"   :alt: {png.stem}", "   :width: 100%", ""]
        if caption:
            lines += [f"   {caption}", ""]
        return lines

    def _one(self, stem: str, extras: list[str], several: bool) -> list[nodes.Node]:
        png, js, cs = (FIGURES / f"{stem}.{ext}" for ext in ("png", "json", "csv"))
        if "only-table" in self.options:
            if not cs.exists():
                return self._parse([f"*No results table* ``figures/{stem}.csv`` *yet.*", ""])
            return self._parse(self._table(cs))
        data: Any = None
        problem = None
        if js.exists():
            try:
                data = json.loads(js.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                problem = type(err).__name__
        command = self.options.get("command", f"python studies/{stem}.py")
        command = command.replace("{stem}", stem)
        if data is not None:
            command = fill_command(command, data)
        lines: list[str] = []
        if several:
            lines += [f".. rubric:: ``{stem}``", ""]
        if png.exists():
            lines += self._image(png, self.options.get("caption"))
        else:
            lines += [f"*The figure* ``figures/{stem}.png`` *has not been generated yet.*", ""]
        for extra in extras:
            lines += self._image(FIGURES / f"{extra}.png", None)
        lines += ["**Command** (writes the figure and its JSON and CSV into ``figures/``):", "",
                  ".. code-block:: bash", "", f"   {command}", ""]
        if problem is not None:
            lines += [f"*The results file* ``figures/{stem}.json`` *could not be read "
                      f"({problem}).*", ""]
            return self._parse(lines)
        if data is None:
            lines += [f"*No results file* ``figures/{stem}.json`` *yet: the key numbers appear "
                      f"here once the command above has been run.*", ""]
            return self._parse(lines)
        lines += self._keys(data)
        lines += self._table(cs)
        lines += self._settings(data)
        return self._parse(lines)

    def _settings(self, data: Any) -> list[str]:
        if not isinstance(data, dict):
            return []
        items = run_settings(data)
        if not items:
            return []
        lines = ["**Run settings** (from the JSON):", ""]
        for k, v in items:
            lines.append(f"- ``{k}``: {_escape(format_number(v))}")
        return lines + [""]

    def _keys(self, data: Any) -> list[str]:
        spec = "\n".join(self.content) if self.content else self.options.get("keys")
        rows: list[tuple[str, str]] = []
        if spec:
            for raw in spec.splitlines():
                if not raw.strip():
                    continue
                label, sep, path = raw.partition(" = ")
                label, path = label.strip(), (path if sep else label).strip()
                value = lookup(data, path)
                shown = "*not in the JSON*" if value is _MISSING else _escape(format_number(value))
                rows.append((_escape(label), shown))
        elif isinstance(data, dict) and isinstance(data.get("summary"), dict):
            rows = [(_escape(k), _escape(format_number(v))) for k, v in data["summary"].items()]
        if not rows:
            return []
        lines = ["**Key numbers** (from the JSON):", "", ".. list-table::", "   :header-rows: 1",
                 "   :widths: 3 2", "", "   * - quantity", "     - value"]
        for label, shown in rows:
            lines += [f"   * - {label}", f"     - {shown}"]
        return lines + [""]

    def _table(self, path: Path) -> list[str]:
        spec = self.options.get("table")
        if not spec or not path.exists():
            return []
        rows = _read_csv(path)
        if not rows:
            return []
        rows = _where(rows, self.options.get("table-where", ""))
        cols = []
        for pat in (c.strip() for c in spec.split(",")):
            if not pat or not rows:
                continue
            cols += [c for c in rows[0] if fnmatch.fnmatchcase(c, pat) and c not in cols]
        # a column empty in every shown row says nothing
        cols = [c for c in cols if any(r.get(c, "") not in ("", None) for r in rows)]
        if not rows or not cols:
            return []
        limit = self.options.get("table-max-rows", 60)
        shown = rows[:limit]
        lines = [f"**Results table** (from ``figures/{path.name}``):", "", ".. list-table::",
                 "   :header-rows: 1", ""]
        lines += ["   * - " + _escape(cols[0])] + [f"     - {_escape(c)}" for c in cols[1:]]
        for r in shown:
            cells = [_escape(format_number(r.get(c, ""))) or "–" for c in cols]
            lines += ["   * - " + cells[0]] + [f"     - {c}" for c in cells[1:]]
        lines.append("")
        if len(rows) > len(shown):
            lines += [f"*({len(rows) - len(shown)} more rows in the CSV.)*", ""]
        return lines


def setup(app):
    app.add_directive("lowrank-figure", LowrankFigure)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
