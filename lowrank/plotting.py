"""One shared figure style for every study (seaborn / matplotlib).

Importing this module changes nothing in matplotlib: the study scripts call
:func:`use_file_backend` (through :func:`lowrank.cli.run_cli`) to draw to files with Agg
unless ``MPLBACKEND`` names another backend.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import seaborn as sns

from .io import atomic_write_bytes

__all__ = ["use_file_backend", "apply_style", "LOSS_COLORS", "NGD_STYLE", "save_figure",
           "budget_colors", "draw_boundary", "format_steps", "NOT_SEPARATED_LABEL",
           "mark_not_separated", "plot_run_ratios", "not_separated_handle", "plot_sweep_ratios",
           "figure_legend"]

def use_file_backend() -> str:
    """Draw to files: switch matplotlib to Agg unless ``MPLBACKEND`` names a backend.

    Called by the study scripts' entry points (not on import), so that a study run on a
    desktop opens no window and a user's ``MPLBACKEND`` still wins.

    Returns
    -------
    str
        The backend in use afterwards.

    Examples
    --------
    >>> import os
    >>> use_file_backend().lower() == (os.environ.get("MPLBACKEND") or "agg").lower()
    True
    """
    if not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    return matplotlib.get_backend()


#: One colour per training method, used by every figure.
LOSS_COLORS = {
    "cross_entropy": "#c0392b",
    "differential": "#2471a3",
    "optimal": "#1e8449",
    "predicted": "#7d3c98",
}

#: Line style of normalized gradient descent (hollow markers, dotted line), per loss; plain
#: gradient descent keeps filled markers and solid lines.
NGD_STYLE = {
    "cross_entropy": {"color": "#641e16", "marker": "o", "mfc": "none", "ms": 7, "mew": 1.4,
                      "ls": ":", "lw": 1.4},
    "differential": {"color": "#154360", "marker": "s", "mfc": "none", "ms": 7, "mew": 1.4,
                     "ls": ":", "lw": 1.4},
}


#: Legend text of the marker drawn by :func:`mark_not_separated`.
NOT_SEPARATED_LABEL = "$\\times$ on the axis: run does not separate the training data (no margin)"


def mark_not_separated(ax, xs, separated, y: float = 0.0, **style):
    """Mark the runs that do not separate the training data with a cross at height ``y``.

    Such a run has no margin (some training point is on the wrong side): it is drawn as
    a cross on the axis instead of a margin point, in the colour of its series. The crosses
    are not clipped, so one at the lower limit of the axis stays visible.

    Parameters
    ----------
    ax : matplotlib Axes
    xs : sequence of float
        Positions of the runs.
    separated : sequence of bool
        Whether each run separates the data (``None`` counts as not separated).
    y : float, default 0
        Height of the crosses (the lower limit of a ratio axis).
    **style
        Passed to ``ax.plot`` (``color`` ...); ``marker``, ``ms``, ``mew`` and ``ls`` have
        defaults.

    Returns
    -------
    list of Line2D
        What ``ax.plot`` returns (empty when every run separates).

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots()
    >>> (line,) = mark_not_separated(ax, [1.0, 2.0, 3.0], [True, False, None], color="k")
    >>> line.get_xydata().tolist(), line.get_marker()
    ([[2.0, 0.0], [3.0, 0.0]], 'x')
    >>> mark_not_separated(ax, [1.0], [True])
    []
    >>> plt.close(fig)
    """
    bad = [x for x, ok in zip(xs, separated, strict=True) if not ok]
    if not bad:
        return []
    kw = {"marker": "x", "ms": 8, "mew": 2.0, "ls": "none", "clip_on": False, "zorder": 5} | style
    return ax.plot(bad, [y] * len(bad), **kw)


def not_separated_handle():
    """A legend handle for the crosses of :func:`mark_not_separated` (label
    :data:`NOT_SEPARATED_LABEL`).

    Returns
    -------
    matplotlib.lines.Line2D
        A line without data, drawn as a dark cross.

    Examples
    --------
    >>> not_separated_handle().get_marker()
    'x'
    """
    from matplotlib.lines import Line2D

    return Line2D([], [], color="0.2", marker="x", ms=8, mew=2.0, ls="none")


def plot_run_ratios(ax, xs, records, run: str, index: int = -1, **style) -> None:
    """Margin ratios of one run of a sweep after one budget, with crosses where it has none.

    Draws ``record[f"{run}_ratio"][index]`` against ``xs`` (a gap where it is ``None``) and,
    through :func:`mark_not_separated`, a cross on the axis for each record whose
    ``f"{run}_separated"[index]`` is false (see :func:`lowrank.margin_study.mark_separation`).

    Parameters
    ----------
    ax : matplotlib Axes
    xs : sequence of float
        One position per record.
    records : sequence of mapping
        Sweep records (:func:`lowrank.margin_study.margin_config`).
    run : str
        ``"ce"``, ``"diff"``, ``"ngd_ce"`` or ``"ngd_diff"``.
    index : int, default -1
        Which budget.
    **style
        Passed to ``ax.plot`` for the ratios (the crosses take its ``color``).

    Returns
    -------
    None

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots()
    >>> recs = [{"ce_ratio": [0.5], "ce_separated": [True]},
    ...         {"ce_ratio": [None], "ce_separated": [False]}]
    >>> plot_run_ratios(ax, [1.0, 2.0], recs, "ce", color="r", label="GD")
    >>> [line.get_xydata().tolist() for line in ax.lines]
    [[[1.0, 0.5], [2.0, nan]], [[2.0, 0.0]]]
    >>> plt.close(fig)
    """
    def at(values):  # lists are aligned with the budgets; a record may lack the run
        return values[index] if values else None

    ratios = [at(r.get(f"{run}_ratio")) for r in records]
    ax.plot(xs, [float("nan") if v is None else float(v) for v in ratios], **style)
    have = [(x, at(r[f"{run}_separated"])) for x, r in zip(xs, records, strict=True)
            if r.get(f"{run}_separated")]
    if have:
        mark_not_separated(ax, [x for x, _ in have], [ok for _, ok in have], color=style.get("color"))


def plot_sweep_ratios(ax, xs, records, settings) -> None:
    """The measured and predicted margin ratios of a sweep on one axis.

    Draws the exact cross-entropy-limit prediction (``ratio_predicted``), plain gradient
    descent on cross-entropy after every budget of ``settings["ce_steps"]`` (reds, light =
    few steps), differential training after every budget of ``settings["diff_steps"]``
    (blues) and, when ``settings["ngd_steps"]`` is not empty, normalized gradient descent
    for both losses after its largest budget (:data:`NGD_STYLE`), each through
    :func:`plot_run_ratios` (crosses where a run does not separate the data).

    Parameters
    ----------
    ax : matplotlib Axes
    xs : sequence of float
        One position per record.
    records : sequence of mapping
        Sweep records (:func:`lowrank.margin_study.margin_records`).
    settings : mapping
        ``ce_steps``, ``diff_steps`` and optionally ``ngd_steps``.

    Returns
    -------
    None

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots()
    >>> recs = [{"ratio_predicted": 0.5, "ce_ratio": [0.3], "ce_separated": [True],
    ...          "diff_ratio": [1.0], "diff_separated": [True]}]
    >>> plot_sweep_ratios(ax, [1.0], recs, {"ce_steps": [10], "diff_steps": [10]})
    >>> [line.get_label() for line in ax.lines]
    ['predicted: exact CE-limit solver', 'GD cross-entropy, T=10', 'differential, T=10']
    >>> plt.close(fig)
    """
    ce_colors = budget_colors(settings["ce_steps"])
    diff_colors = budget_colors(settings["diff_steps"], cmap="Blues")
    predicted = [float("nan") if r.get("ratio_predicted") is None else r["ratio_predicted"]
                 for r in records]
    ax.plot(xs, predicted, color=LOSS_COLORS["predicted"], lw=2.2, ls="--", marker="D", ms=4,
            label="predicted: exact CE-limit solver")
    for t_i, T in enumerate(settings["ce_steps"]):
        plot_run_ratios(ax, xs, records, "ce", t_i, color=ce_colors[T], marker="o", ms=3.5, lw=1,
                        label=f"GD cross-entropy, T={format_steps(T)}")
    for t_i, T in enumerate(settings["diff_steps"]):
        plot_run_ratios(ax, xs, records, "diff", t_i, color=diff_colors[T], marker="s", ms=3.5,
                        lw=1, label=f"differential, T={format_steps(T)}")
    if settings.get("ngd_steps"):
        T = format_steps(settings["ngd_steps"][-1])
        for loss, key, name in (("cross_entropy", "ce", "cross-entropy"),
                                ("differential", "diff", "differential")):
            plot_run_ratios(ax, xs, records, f"ngd_{key}", -1,
                            label=f"normalized GD {name}, T={T}", **NGD_STYLE[loss])


def figure_legend(fig, ax, records=(), runs=("ce", "diff", "ngd_ce", "ngd_diff"), **kwargs):
    """One legend below the figure with the entries of ``ax``, and the cross where needed.

    Adds the :func:`not_separated_handle` entry when a record has a ``<run>_separated``
    flag that is false.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        A figure with ``layout="constrained"`` (the legend goes ``"outside lower center"``).
    ax : matplotlib Axes
        The axis whose labelled lines make the legend.
    records : sequence of mapping, optional
        Sweep records, checked for runs that do not separate the data.
    runs : sequence of str
        The run prefixes to check.
    **kwargs
        Passed to ``fig.legend`` (e.g. ``ncol``); ``fontsize`` 8 and no frame by default.

    Returns
    -------
    matplotlib.legend.Legend

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots(layout="constrained")
    >>> _ = ax.plot([0, 1], [0, 1], label="GD")
    >>> leg = figure_legend(fig, ax, [{"ce_separated": [True, False]}], ncol=2)
    >>> [t.get_text() for t in leg.get_texts()][1] == NOT_SEPARATED_LABEL
    True
    >>> plt.close(fig)
    """
    handles, labels = ax.get_legend_handles_labels()
    if any(not ok for r in records for run in runs for ok in r.get(f"{run}_separated") or []):
        handles.append(not_separated_handle())
        labels.append(NOT_SEPARATED_LABEL)
    return fig.legend(handles, labels, **({"loc": "outside lower center", "fontsize": 8,
                                           "frameon": False} | kwargs))


def apply_style() -> None:
    """Set the package's seaborn/matplotlib style (call once per study).

    Sets the seaborn ``"paper"`` context with a white grid and updates
    ``matplotlib.rcParams`` (figure and save resolution, tight bounding box, bold titles).
    The style applies to every figure created afterwards in the process.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> apply_style()
    >>> plt.rcParams["savefig.dpi"], plt.rcParams["savefig.bbox"]
    (200.0, 'tight')
    """
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 120, "savefig.dpi": 200, "savefig.bbox": "tight",
                         "axes.titleweight": "bold"})


def save_figure(fig, out_dir: str | Path, name: str) -> list[Path]:
    """Save ``fig`` as ``name.png`` and ``name.pdf`` in ``out_dir`` atomically; close it.

    The PDF is written without a creation date, so identical figures give identical files.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure; it is closed after saving.
    out_dir : str or Path
        Output directory (created if needed).
    name : str
        File name without extension.

    Returns
    -------
    list of Path
        The PNG and PDF paths, in that order.

    Raises
    ------
    OSError
        If a file cannot be written.

    Examples
    --------
    >>> import tempfile
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots(figsize=(2, 2))
    >>> _ = ax.plot([0, 1], [0, 1])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     [p.name for p in save_figure(fig, tmp, "demo")]
    ['demo.png', 'demo.pdf']
    """
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
        ``{T: rgba}``, in increasing order of ``T``.

    Examples
    --------
    >>> colors = budget_colors([1000, 10, 100])
    >>> list(colors), len(colors[10])
    ([10, 100, 1000], 4)
    >>> colors[10] == colors[1000]  # lighter for fewer steps
    False
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
        What ``ax.plot`` returns (one line).

    Raises
    ------
    ZeroDivisionError
        If ``w`` is zero (no boundary).

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots()
    >>> (line,) = draw_boundary(ax, [1.0, 1.0], -1.0, (0.0, 2.0), (0.0, 2.0), color="k")
    >>> line.get_xydata().tolist()
    [[0.0, 1.0], [2.0, -1.0]]
    >>> plt.close(fig)
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
    """``1000000 -> '10^6'``, ``20000 -> '2x10^4'`` (mathtext), for legends.

    Parameters
    ----------
    t : int
        A step count.

    Returns
    -------
    str
        ``str(t)`` below 100 (and for ``t <= 0``), otherwise a mathtext power of ten.

    Examples
    --------
    >>> format_steps(50), format_steps(1_000_000)
    ('50', '$10^{6}$')
    >>> print(format_steps(20_000))
    $2\\times10^{4}$
    """
    import math

    t = int(t)
    if t <= 0:
        return str(t)
    e = int(math.floor(math.log10(t)))
    m = t / 10 ** e
    if e < 2:
        return str(t)
    return rf"$10^{{{e}}}$" if abs(m - 1) < 1e-9 else rf"${m:g}\times10^{{{e}}}$"
