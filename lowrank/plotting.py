"""One shared figure style for every study (seaborn / matplotlib)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from .io import atomic_write_bytes  # noqa: E402

__all__ = ["apply_style", "LOSS_COLORS", "save_figure"]

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
