"""Documentation checks: docstrings of the public API, examples, and the pages' code.

* Every name in a module's ``__all__`` that is a class or function has a docstring (so do
  its public methods), and every public function and class documents itself in numpydoc
  sections: ``Parameters`` (functions and constructors that take arguments), ``Returns``
  (functions that return something), ``Attributes`` (dataclasses), ``Examples`` (all).
  Constants in ``__all__`` are shown with their values in the API reference.
* The ``Examples`` sections of the docstrings run as doctests.
* The ``pycon`` code blocks of README.md and the hand-written pages in ``docs/`` run as doctests, so
  every number they print is one the code produces.
* The CIFAR-10 tutorial's code runs end to end on a tiny data set in the CIFAR-10 format.
* The API reference lists every public module and the gallery shows every figure.

The Sphinx build itself (warnings as errors) is run by ``.ci/run``, not here.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import os
import pkgutil
import re
import sys
from pathlib import Path

import pytest

import lowrank

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FIGURES = ROOT / "figures"

# BEGIN KNOWN GAPS
#: Documentation gaps that existed when this test was written, listed so that the test
#: passes while they are being fixed. Each entry must disappear with its fix: the tests
#: fail both on a new gap and on a listed gap that no longer exists.
KNOWN_SECTION_GAPS: dict[str, list[str]] = {}
#: Docstrings whose Examples do not print what they show.
KNOWN_FAILING_EXAMPLES: set[str] = set()
# END KNOWN GAPS


def _all_modules() -> list[str]:
    names = [lowrank.__name__]
    for info in pkgutil.walk_packages(lowrank.__path__, prefix="lowrank."):
        names.append(info.name)
    return sorted(names)


MODULES = _all_modules()


def _is_private(modname: str) -> bool:
    return any(part.startswith("_") for part in modname.split(".")[1:])


def _own_public(modname: str) -> list[tuple[str, object]]:
    """(name, object) for each name of ``__all__`` documented with this module.

    Classes and functions count where they are defined, or in a public module that
    re-exports them from a private one; constants count in every module that lists them.
    """
    mod = importlib.import_module(modname)
    out = []
    for name in getattr(mod, "__all__", []):
        obj = getattr(mod, name)
        if inspect.ismodule(obj):
            continue
        if inspect.isclass(obj) or inspect.isfunction(obj):
            home = getattr(obj, "__module__", "") or ""
            if home != modname and not _is_private(home):
                continue  # a re-export; checked where it is defined
        out.append((name, obj))
    return out


def _sections(doc: str) -> set[str]:
    """numpydoc section titles present in a docstring."""
    lines = inspect.cleandoc(doc).splitlines()
    found = set()
    for a, b in zip(lines, lines[1:], strict=False):
        if a.strip() and set(b.strip()) == {"-"} and len(b.strip()) >= len(a.strip()) - 1:
            found.add(a.strip())
    return found


def _takes_arguments(func) -> bool:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return False
    return any(p.name not in ("self", "cls") for p in sig.parameters.values())


def _returns_something(func) -> bool:
    try:
        ann = inspect.signature(func).return_annotation
    except (TypeError, ValueError):
        return True
    return ann not in (None, "None", inspect.Signature.empty) or ann is inspect.Signature.empty


# --------------------------------------------------------------------------------------
# docstrings of the public API


@pytest.mark.parametrize("modname", MODULES)
def test_every_public_name_has_a_docstring(modname):
    mod = importlib.import_module(modname)
    assert (mod.__doc__ or "").strip(), f"module {modname} has no docstring"
    missing = []
    for name, obj in _own_public(modname):
        if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismethod(obj):
            if not (inspect.getdoc(obj) or "").strip():
                missing.append(name)
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if attr.startswith("_") or not (inspect.isfunction(member)
                                                    or isinstance(member, property)):
                        continue
                    if attr == "forward" or getattr(member, "__doc__", None):
                        continue  # nn.Module.forward is documented by the class
                    missing.append(f"{name}.{attr}")
    assert not missing, f"{modname}: public names without a docstring: {missing}"


def _section_problems(modname: str) -> list[str]:
    problems = []
    for name, obj in _own_public(modname):
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        doc = inspect.getdoc(obj) or ""
        have = _sections(doc)
        if inspect.isfunction(obj):
            if _takes_arguments(obj) and "Parameters" not in have:
                problems.append(f"{name}: no Parameters section")
            if _returns_something(obj) and "Returns" not in have and "Yields" not in have:
                problems.append(f"{name}: no Returns section")
        elif inspect.isclass(obj) and not issubclass(obj, BaseException):
            init = obj.__init__
            own_init = "__init__" in vars(obj) and not getattr(obj, "__dataclass_fields__", None)
            if own_init and _takes_arguments(init) and "Parameters" not in have:
                problems.append(f"{name}: no Parameters section (constructor arguments)")
            if getattr(obj, "__dataclass_fields__", None) and not (
                    {"Attributes", "Parameters"} & have):
                problems.append(f"{name}: dataclass without an Attributes section")
        if "Examples" not in have and not (inspect.isclass(obj) and issubclass(obj, BaseException)):
            problems.append(f"{name}: no Examples section")
    return problems


@pytest.mark.parametrize("modname", [m for m in MODULES if not _is_private(m)])
def test_public_docstrings_have_numpydoc_sections(modname):
    problems = set(_section_problems(modname))
    known = set(KNOWN_SECTION_GAPS.get(modname, ()))
    new = sorted(problems - known)
    fixed = sorted(known - problems)
    assert not new, f"{modname}: " + "; ".join(new)
    assert not fixed, (f"{modname}: fixed, remove from KNOWN_SECTION_GAPS in tests/test_docs.py: "
                       + "; ".join(fixed))


# --------------------------------------------------------------------------------------
# examples


def _failing_doctests(modname: str) -> tuple[set[str], str]:
    """Names of the docstrings of ``modname`` whose examples fail, and the doctest report."""
    import io

    mod = importlib.import_module(modname)
    finder = doctest.DocTestFinder(exclude_empty=True)
    extra = {"torch": importlib.import_module("torch")}
    failing, out = set(), io.StringIO()
    for test in finder.find(mod, modname, extraglobs=extra):
        if not test.name.startswith(modname) or not test.examples:
            continue
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        runner.run(test, out=out.write)
        if runner.failures:
            failing.add(test.name)
    return failing, out.getvalue()


def _doctest_module_of(name: str) -> str:
    """The module part of a doctest name such as ``lowrank.losses.CrossEntropyLoss``."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in MODULES:
            return ".".join(parts[:i])
    return name


@pytest.mark.parametrize("modname", MODULES)
def test_docstring_examples_run(modname, monkeypatch, capsys):
    monkeypatch.setenv("LOWRANK_QUIET", "1")
    failing, report = _failing_doctests(modname)
    known = {n for n in KNOWN_FAILING_EXAMPLES if _doctest_module_of(n) == modname}
    new = sorted(failing - known)
    fixed = sorted(known - failing)
    assert not new, f"{modname}: examples fail:\n{report}"
    assert not fixed, (f"{modname}: examples now pass, remove from KNOWN_FAILING_EXAMPLES in "
                       f"tests/test_docs.py: {fixed}")


_PYCON = re.compile(r"^```pycon[^\n]*\n(.*?)^```", re.S | re.M)
_PAGES = [ROOT / "README.md"] + sorted(p for p in DOCS.rglob("*.md")
                                       if "_build" not in p.parts and "generated" not in p.parts)


@pytest.mark.parametrize("page", [p for p in _PAGES if _PYCON.search(p.read_text("utf-8"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_page_examples_print_what_the_page_says(page, monkeypatch, capsys):
    """The pycon blocks of a page run as one doctest session, outputs compared."""
    monkeypatch.setenv("LOWRANK_QUIET", "1")
    source = "\n".join(_PYCON.findall(page.read_text("utf-8")))
    test = doctest.DocTestParser().get_doctest(source, {}, page.name, str(page), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    result = runner.summarize(verbose=False)
    out = capsys.readouterr().out
    assert result.attempted > 0
    assert result.failed == 0, f"{page.name}: {result.failed} examples differ:\n{out}"


@pytest.mark.slow
def test_cifar10_tutorial_runs(tmp_path, monkeypatch):
    """Run the tutorial's code blocks on a tiny data set in the CIFAR-10 format."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        fixtures = pytest.importorskip("_image_fixtures")
    finally:
        sys.path.remove(str(ROOT / "tests"))
    page = (DOCS / "tutorials" / "cifar10.md").read_text("utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", page, re.S | re.M)
    assert blocks and blocks[0].startswith("# settings"), "the first block must hold the settings"
    data = tmp_path / "data"
    manifest = fixtures.write_tiny_cifar(data)
    blocks[0] = (f"from pathlib import Path\nDATA = Path({str(data)!r})\n"
                 "CLASSES = ('cat', 'dog')\nEPOCHS = 1\nN_ATTACK = 6\nDEVICE = 'cpu'\n")
    code = "\n".join(blocks)
    # the tiny files have their own md5 sums; small attack budgets keep the test short
    for old, new in [("load_cifar10_binary(DATA, CLASSES)",
                      "load_cifar10_binary(DATA, CLASSES, checksums=MANIFEST)"),
                     ('norm="l2", seed=0)', 'norm="l2", seed=0, steps=10, refine_steps=5)')]:
        assert old in code, f"the tutorial no longer contains {old!r}"
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOWRANK_QUIET", "1")
    namespace = {"MANIFEST": manifest, "__name__": "tutorial"}
    exec(compile(code, "docs/tutorials/cifar10.md", "exec"), namespace)  # noqa: S102
    assert set(namespace["results"]) == {"cross_entropy", "differential"}
    assert (tmp_path / "runs" / "tutorial" / "differential.ckpt").exists()


# --------------------------------------------------------------------------------------
# coverage of the reference and of the gallery


def test_api_reference_lists_every_public_module():
    index = (DOCS / "api" / "index.md").read_text("utf-8")
    listed = set(re.findall(r"^\s+(lowrank(?:\.\w+)+)\s*$", index, re.M))
    missing = []
    for modname in MODULES:
        if _is_private(modname) or modname == "lowrank":
            continue
        mod = importlib.import_module(modname)
        if hasattr(mod, "__path__") and not any(
                (inspect.isclass(o) or inspect.isfunction(o)) and o.__module__ == modname
                for _, o in _own_public(modname)):
            continue  # a package that only re-exports its submodules' names
        if modname not in listed:
            missing.append(modname)
    assert not missing, f"docs/api/index.md does not list: {missing}"


def _gallery_patterns() -> list[str]:
    pats = []
    for page in (DOCS / "gallery").glob("*.md"):
        pats += re.findall(r"^```\{lowrank-figure\}\s+(\S+)", page.read_text("utf-8"), re.M)
    return pats


def test_gallery_shows_every_figure():
    import fnmatch

    pats = _gallery_patterns()
    assert pats, "no lowrank-figure directive in docs/gallery"
    stems = sorted(p.stem for p in FIGURES.glob("*.png"))
    missing = [s for s in stems if not any(fnmatch.fnmatch(s, p) for p in pats)]
    assert not missing, f"figures without a gallery entry (docs/gallery/*.md): {missing}"


def test_gallery_extension_reads_json_paths():
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        gallery = importlib.import_module("gallery")
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    data = {"mode": "full", "runs": [{"key": "a", "m": [1.0, 0.5]}, {"key": "b", "m": [2.0]}]}
    assert gallery.lookup(data, "runs[key=b].m[0]") == 2.0
    assert gallery.lookup(data, "runs[-1].key") == "b"
    assert gallery.lookup(data, "runs[*].key") == ["a", "b"]
    assert gallery.lookup(data, "runs[key=c].m") is gallery._MISSING
    assert gallery.lookup(data, "nothing.here") is gallery._MISSING
    assert gallery.format_number(0.447213595499958) == "0.4472"
    assert gallery.format_number(1_000_000) == "1\u2009000\u2009000"
    assert gallery.format_number([1, 0.25]) == "[1, 0.25]"
    assert gallery.run_settings(data) == [("mode", "full")]
    assert os.fspath(gallery.FIGURES)
