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
* The API reference lists every public module; every committed figure has a sphinx-gallery
  example (``examples/plot_*.py``) that reads its JSON, and two examples run here.

The Sphinx build itself (warnings as errors) is run by ``.ci/run``, not here.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
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
    monkeypatch.setenv("TQDM_DISABLE", "1")
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
    monkeypatch.setenv("TQDM_DISABLE", "1")
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
    monkeypatch.setenv("TQDM_DISABLE", "1")
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


EXAMPLES = ROOT / "examples"


def _json_stem(png_stem: str) -> str:
    """The results file a figure belongs to: its own JSON, or that of the longest stem it extends."""
    owners = [p.stem for p in FIGURES.glob("*.json")
              if p.stem == png_stem or png_stem.startswith(p.stem + "_")]
    assert owners, f"figures/{png_stem}.png has no results JSON in figures/"
    return max(owners, key=len)


def test_gallery_shows_every_figure():
    """Every committed figure has a sphinx-gallery example that loads its JSON and plots it."""
    examples = {p.name: p.read_text("utf-8") for p in EXAMPLES.glob("plot_*.py")}
    assert examples, "no examples/plot_*.py"
    missing = []
    for png in sorted(FIGURES.glob("*.png")):
        name = f'"{_json_stem(png.stem)}.json"'
        if not any(name in text for text in examples.values()):
            missing.append(png.name)
    assert not missing, f"figures whose JSON no examples/plot_*.py reads: {missing}"
    for fname, text in examples.items():
        assert re.match(r'r?"""\n.+\n=+\n', text), f"{fname}: no sphinx-gallery title in its docstring"
        assert "load_json(" in text and "figure_files = " in text, (
            f"{fname}: an example loads the committed results and names the figure files it draws")


def _run_example(name: str, tmp_path, monkeypatch, capsys) -> tuple[str, dict]:
    """Run ``examples/<name>.py`` as sphinx-gallery would (Agg backend); its output and globals."""
    import runpy
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the redrawn figures go here
    namespace = runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="__main__")
    return capsys.readouterr().out, namespace


def _drawn(namespace: dict, tmp_path) -> list:
    files = namespace["figure_files"]
    assert files and all(f.is_file() and tmp_path in f.parents for f in files)
    return files


def test_gallery_example_prints_the_committed_numbers(tmp_path, monkeypatch, capsys):
    """plot_boundary_2d.py draws the figure and prints the JSON's margins, which the
    library's geometric_margin recomputes from the committed weights."""
    from lowrank.io import load_json

    out, namespace = _run_example("plot_boundary_2d", tmp_path, monkeypatch, capsys)
    assert [f.suffix for f in _drawn(namespace, tmp_path)] == [".png", ".pdf"]
    results = load_json(FIGURES / "boundary_2d.json")
    printed = re.findall(r"T = +([\d,]+): margin (-?\d\.\d{4}) \(recomputed (-?\d\.\d{4})\)", out)
    runs = [run for data in results["datasets"] for run in data["gd"] + [data["differential"]]]
    expected = [(f"{run['T']:,}", f"{run['margin']:.4f}", f"{run['margin']:.4f}")
                for run in runs if run["margin"] is not None]
    assert printed == expected
    # runs without a margin (not separated) are said to be so, with a negative signed margin
    unseparated = re.findall(r"T = +([\d,]+): not separated \(signed margin (-?\d\.\d{4})\)", out)
    assert [t for t, _ in unseparated] == [f"{run['T']:,}" for run in runs if run["margin"] is None]
    assert unseparated and all(float(m) <= 0 for _, m in unseparated)
    for data in results["datasets"]:
        assert f"predicted cross-entropy limit {data['predicted']['ce_limit_margin']:.4f}" in out


def test_gallery_image_example_prints_the_committed_numbers(tmp_path, monkeypatch, capsys):
    """plot_image_binary.py draws both figures of every committed run and prints its shares."""
    from lowrank.io import load_json

    out, namespace = _run_example("plot_image_binary", tmp_path, monkeypatch, capsys)
    runs = sorted(FIGURES.glob("image_*_vs_*.json"))  # the binary runs (not image_multiclass_*)
    drawn = sorted(f.name for f in tmp_path.rglob("*.png"))
    assert drawn == sorted(f"{p.stem}{s}.png" for p in runs for s in ("", "_spectrum"))
    assert _drawn(namespace, tmp_path)
    for path in runs:
        per_loss = load_json(path)["summary"]["per_loss"]
        accuracy = "".join(f"{per_loss[loss]['clean_test_acc']:15.4f}"
                           for loss in ("cross_entropy", "differential"))
        assert f"clean test accuracy{' ' * 9}{accuracy}" in out
