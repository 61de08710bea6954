r"""
Kernel benchmark
================

Time of one forward and backward step of the all-pairs logistic loss
(:func:`lowrank.kernels.pairwise_logistic`), pairs per second and peak extra memory, per
backend, against the number of positives and negatives :math:`P = N`. The measured
table, the hardware and how to reproduce it are on the :doc:`benchmarks </benchmarks>`
page.

The timings were measured by ``python -m pytest tests/benchmarks --benchmark-only -o
addopts="" --benchmark-json=figures/kernel_benchmark.raw.json`` and summarised by
``python studies/kernel_benchmark.py --input figures/kernel_benchmark.raw.json --out
figures``; nothing is timed when this page is built.
"""

# %%
# The committed measurements and the study's plotting function
# -------------------------------------------------------------
# The summary is read from ``figures/kernel_benchmark.json``; the study script is loaded
# by path, without running it, for its ``plot`` and ``markdown_table`` functions.
import tempfile
from pathlib import Path

import lowrank
from lowrank.cli import load_script
from lowrank.io import load_json

ROOT = Path(lowrank.__file__).resolve().parents[1]  # the clone (pip install -e .)
results = load_json(ROOT / "figures" / "kernel_benchmark.json")
study = load_script(ROOT / "studies" / "kernel_benchmark.py")
print(f"devices: {results['devices']} ({results['cpu']}, {results['threads']} threads), "
      f"measured {results['benchmark_datetime']}")
print(f"time: {results['time_statistic']}")

# %%
# The figure
# ----------
# ``plot`` writes the PNG and PDF (here into a temporary folder) and returns their paths.
threads = results["threads"] if isinstance(results["threads"], list) else [results["threads"]]
title = (f"pairwise logistic loss, forward + backward, float32 on {results['devices']}"
         + (f" ({threads[0]} threads)" if threads else ""))
figure_files = study.plot(results["rows"], Path(tempfile.mkdtemp()), title)

# %%
# Key numbers
# -----------
# The numbers behind the kernel's performance goals (``None`` where the backend was not
# measured on this machine), then the full table.
for key, value in results["summary"].items():
    print(f"{key}: {value if value is None else format(value, '.4g')}")
print()
print(study.markdown_table(results["rows"]))
