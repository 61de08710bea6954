"""A sphinx-gallery image scraper for the figures that the studies save to files.

The studies draw with :func:`lowrank.plotting.save_figure`, which writes the PNG and PDF
and closes the figure, so sphinx-gallery's matplotlib scraper (which looks at the open
figures) finds nothing. This scraper shows instead every PNG file that the example names
in a global variable, as a :class:`pathlib.Path` or in a list or tuple of them (what a
study's ``plot(results, out_dir)`` returns), once, after the code block that named it.
It is configured in ``docs/conf.py`` as ``"saved_figures.scraper"``.

The figures are wide (up to 15 inches, several panels) and drawn at 200 dpi. Each is given
a width of :data:`MIN_PX_PER_INCH` CSS pixels per inch of the figure, and
``docs/_static/gallery.css`` lets it grow to the page's width but never shrink below that:
a page too narrow for it scrolls the figure sideways instead of making its labels
unreadable. A click on a figure opens the full-resolution PNG.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from PIL import Image

#: Smallest shown width per inch of figure: 10-point labels stay about 9 CSS pixels tall.
MIN_PX_PER_INCH = 64


def _png_paths(value: Any) -> list[Path]:
    items = value if isinstance(value, (list, tuple)) else [value]
    return [v for v in items if isinstance(v, Path) and v.suffix == ".png"]


def _min_width(png: Path) -> int:
    """The figure's width in inches (from the PNG's dpi) times :data:`MIN_PX_PER_INCH`."""
    with Image.open(png) as im:
        dpi = float((im.info.get("dpi") or (100.0,))[0]) or 100.0
        return round(im.width / dpi * MIN_PX_PER_INCH)


def figure_rst(image: Path, src_dir: str, alt: str) -> str:
    """reST showing ``image`` (inside the Sphinx source folder ``src_dir``) as a gallery figure."""
    rel = "/" + Path(os.path.relpath(image, src_dir)).as_posix()
    return (f"\n.. container:: lowrank-gallery-figure\n\n   .. image:: {rel}\n      :alt: {alt}\n"
            f"      :width: {_min_width(image)}px\n\n")


def scraper(block, block_vars: dict, gallery_conf: dict) -> str:
    """Copy the PNG files the example names and not yet shown into the gallery; their reST."""
    shown = block_vars.setdefault("lowrank_shown_figures", set())
    new = []
    for value in list(block_vars["example_globals"].values()):
        for png in _png_paths(value):
            key = (str(png.resolve()), png.stat().st_mtime_ns) if png.is_file() else None
            if key is not None and key not in shown:
                shown.add(key)
                new.append(png)
    rst = []
    for png, target in zip(new, block_vars["image_path_iterator"], strict=False):
        shutil.copyfile(png, target)
        rst.append(figure_rst(Path(target), gallery_conf["src_dir"], alt=png.stem))
    return "".join(rst)
