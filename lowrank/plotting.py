"""One shared figure style for every study (seaborn / matplotlib)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from .io import atomic_write_bytes  # noqa: E402

__all__ = ["apply_style", "LOSS_COLORS", "save_figure", "budget_colors", "draw_boundary", "format_steps"]

#: One colour per training method, used by every figure.
LOSS_COLORS = {
    "cross_entropy": "#c0392b",
    "differential": "#2471a3",
    "optimal": "#1e8449",
    "predicted": "#7d3c98",
}


def apply_style() -> None:
    """Set the package's seaborn/matplotlib style (call once per study)."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 120, "savefig.dpi": 200, "savefig.bbox": "tight",
                         "axes.titleweight": "bold"})


def save_figure(fig, out_dir: str | Path, name: str) -> list[Path]:
    """Save ``fig`` as ``name.png`` and ``name.pdf`` in ``out_dir`` atomically; close it."""
    paths = []
    for ext in ("png", "pdf"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, metadata={"CreationDate": None} if ext == "pdf" else None)
        paths.append(atomic_write_bytes(Path(out_dir) / f"{name}.{ext}", buf.getvalue()))
    plt.close(fig)
    return paths


def budget_colors(budgets, cmap: str = "Reds", low: float = 0.35, high: float = 0.95) -> dict:
    """One shade per gradient-descent budget ``T`` (light = few steps, dark = many).

    Parameters
    ----------
    budgets : sequence of int
        The step counts.
    cmap : str, default "Reds"
        A sequential matplotlib colormap.
    low, high : float
        The colormap range used.

    Returns
    -------
    dict
        ``{T: rgba}``.
    """
    import numpy as np

    budgets = sorted(budgets)
    shades = np.linspace(low, high, max(len(budgets), 1))
    cm = plt.get_cmap(cmap)
    return {t: cm(s) for t, s in zip(budgets, shades, strict=False)}


def draw_boundary(ax, w, b: float, xlim, ylim, **kwargs):
    """Draw the line ``w . x + b = 0`` of a 2-D linear classifier inside the given limits.

    Parameters
    ----------
    ax : matplotlib Axes
    w : sequence of 2 floats
    b : float
    xlim, ylim : (float, float)
        Extent of the plot (the line is clipped to it).
    **kwargs
        Passed to ``ax.plot`` (label, color, linestyle, ...).

    Returns
    -------
    list of Line2D
    """
    w1, w2 = float(w[0]), float(w[1])
    if abs(w2) >= abs(w1):
        xs = [xlim[0], xlim[1]]
        ys = [-(w1 * x + b) / w2 for x in xs]
    else:
        ys = [ylim[0], ylim[1]]
        xs = [-(w2 * yv + b) / w1 for yv in ys]
    return ax.plot(xs, ys, **kwargs)


def format_steps(t: int) -> str:
    """``1000000 -> '10^6'``, ``20000 -> '2x10^4'`` (mathtext), for legends."""
    import math

    t = int(t)
    if t <= 0:
        return str(t)
    e = int(math.floor(math.log10(t)))
    m = t / 10 ** e
    if e < 2:
        return str(t)
    return rf"$10^{{{e}}}$" if abs(m - 1) < 1e-9 else rf"${m:g}\times10^{{{e}}}$"
