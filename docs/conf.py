"""Sphinx configuration for the lowrank documentation.

Build with ``python -m sphinx -W -b html docs docs/_build/html`` from the repository root.
The build needs no network (there is no intersphinx), and neither does the reader:
MathJax is bundled into the HTML by ``sphinx-mathjax-offline``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")  # tqdm reads TQDM_* variables

import lowrank  # noqa: E402

project = "lowrank"
author = "lowrank developers"
copyright = "2025, lowrank developers"  # noqa: A001
version = release = lowrank.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax copied into _static: formulas render offline
    "sphinx.ext.viewcode",
    "numpydoc",
    "lowrank_docs",  # docs/_ext/lowrank_docs.py: name resolution for re-exported API names
    "sphinx_gallery.gen_gallery",  # examples/plot_*.py -> gallery/: figures redrawn from figures/*.json
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**/.ipynb_checkpoints"]
templates_path = ["_templates"]

# -- MyST ---------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# -- autodoc / autosummary / numpydoc ------------------------------------------------------
autosummary_generate = True  # stubs go to docs/api/generated (gitignored), rebuilt every time
autosummary_imported_members = False
autosummary_ignore_module_all = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpydoc sections carry the types
autodoc_inherit_docstrings = False  # torch docstrings (forward, backward) hold refs into torch docs
autodoc_default_options = {"show-inheritance": True}
add_module_names = False

numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()
numpydoc_xref_param_type = False

# -- sphinx-gallery -----------------------------------------------------------------------
# Each examples/plot_<study>.py loads the committed figures/<study>.json, redraws the figure
# with the study's plotting function and prints the key numbers: nothing is retrained here.
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "gallery",  # generated (gitignored); the pages keep their gallery/ URLs
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    # the studies save and close their figures: show the PNG files an example names
    "image_scrapers": ("matplotlib", "saved_figures.scraper"),
    "backreferences_dir": "api/generated/backreferences",  # API pages list the examples
    "doc_module": ("lowrank",),
    "remove_config_comments": True,
    "min_reported_time": 3600,  # no run times on the pages
}

# -- HTML ---------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"lowrank {release}"
html_static_path = ["_static"]
html_css_files = ["gallery.css"]  # gallery figures use the page's width and open at full size
html_theme_options = {
    "navigation_with_keys": True,
}
pygments_style = "sphinx"
pygments_dark_style = "monokai"
