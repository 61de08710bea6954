"""Figures of the image studies, drawn from their results dicts alone (``--replot`` works)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..plotting import LOSS_COLORS, apply_style, save_figure
from .tasks import NORMS, SPLITS

__all__ = ["SPECTRUM_FLOOR", "plot_image_binary", "visible_spectrum"]

#: Relative singular values below this are float32 round-off of a zero (features computed in
#: float32 have relative precision ~1.2e-7): the spectrum figure leaves them out.
SPECTRUM_FLOOR = 1e-6


def norm_label(norm: str) -> str:
    """``"L2"`` or ``"L∞"``.

    Examples
    --------
    >>> norm_label("linf")
    'L∞'
    """
    return "L2" if norm == "l2" else "L∞"


def visible_spectrum(s, floor: float = SPECTRUM_FLOOR) -> tuple[np.ndarray, np.ndarray, int]:
    """Indices (from 1) and values ``s_i / s_1`` at or above ``floor``; how many were dropped.

    Parameters
    ----------
    s : array-like
        Singular values, largest first.
    floor : float
        Smallest relative value shown.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, int)

    Examples
    --------
    >>> i, v, dropped = visible_spectrum([2.0, 1.0, 1e-30])
    >>> i.tolist(), v.tolist(), dropped
    ([1, 2], [1.0, 0.5], 1)
    """
    s = np.asarray(s, dtype=float)
    if not s.size or s[0] <= 0:
        return np.zeros(0, int), np.zeros(0), int(s.size)
    r = s / s[0]
    keep = r >= floor
    return np.arange(1, s.size + 1)[keep], r[keep], int((~keep).sum())


def _title(proto: Mapping[str, Any]) -> str:
    return f"{proto['dataset']}: {proto['classes'][0]} vs {proto['classes'][1]} ({proto['mode']})"


def plot_image_binary(results: Mapping[str, Any], out: str | Path, name: str) -> list[Path]:
    """The share-vs-eps figure ``<name>`` and the spectrum figure ``<name>_spectrum``.

    Parameters
    ----------
    results : mapping
        Results of :func:`lowrank.images.binary.compare_losses` (or their JSON).
    out : path-like
        Output directory.
    name : str
        File stem.

    Returns
    -------
    list of Path
        The files written.

    Examples
    --------
    See :func:`lowrank.images.binary.plot_study`, which names the files like the JSON.

    >>> import tempfile, lowrank
    >>> from lowrank.io import load_json
    >>> root = Path(lowrank.__file__).resolve().parents[1]
    >>> res = load_json(root / "figures" / "image_fashion_mnist_sneaker_vs_sandal.json")
    >>> len(plot_image_binary(res, tempfile.mkdtemp(), "demo"))
    4
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    apply_style()
    title = _title(results["protocol"])
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5), sharey=True, layout="constrained")
    for i, split in enumerate(SPLITS):
        for j, norm in enumerate(NORMS):
            ax = axes[i, j]
            for loss, entry in results["models"].items():
                a = entry["attacks"][split][norm]
                ax.plot(a["eps"], a["share"], color=LOSS_COLORS[loss], label=loss.replace("_", "-"))
                p = entry.get("pgd", {}).get(split, {}).get(norm)
                if p:
                    ax.plot([p["eps"]], [p["pgd_share"]], marker="x", ls="none", ms=8,
                            color=LOSS_COLORS[loss])
            ax.set_title(f"{split}, {norm_label(norm)}")
            ax.set_xlabel("ε")
            if j == 0:
                ax.set_ylabel("share with adversarial example ≤ ε")
            ax.set_ylim(-0.02, 1.02)
    axes[0, 0].legend(title="× = PGD at fixed ε", loc="lower right")
    fig.suptitle(title)
    files = save_figure(fig, out, name)

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), layout="constrained")
    dropped = 0
    for loss, e in results["models"].items():
        idx, vals, n_drop = visible_spectrum(e.get("final_singular_values", []))
        dropped = max(dropped, n_drop)
        if idx.size:
            axes[0].semilogy(idx, vals, marker=".", color=LOSS_COLORS[loss],
                             label=loss.replace("_", "-"))
        ep = [h["epoch"] for h in e["history"] if "effective_rank" in h]
        er = [h["effective_rank"] for h in e["history"] if "effective_rank" in h]
        axes[1].plot(ep, er, marker="o", color=LOSS_COLORS[loss], label=loss.replace("_", "-"))
    axes[0].set(title="penultimate features, final epoch", xlabel="index i",
                ylabel="s_i / s_1 (centred)")
    if dropped:
        axes[0].text(0.02, 0.02, f"up to {dropped} values < {SPECTRUM_FLOOR:g} (float32 zeros) not shown",
                     transform=axes[0].transAxes, ha="left", va="bottom", fontsize=8)
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].set(title="effective rank per epoch", xlabel="epoch", ylabel="exp(entropy)")
    axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend()
    fig.suptitle(title)
    return files + save_figure(fig, out, name + "_spectrum")
