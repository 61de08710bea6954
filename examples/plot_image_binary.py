r"""
Image studies: cross-entropy against differential training
===========================================================

A small network trained on a two-class image task twice, from the same initialisation,
once with cross-entropy and once with the differential loss: the share of images that
have an adversarial example within a budget :math:`\varepsilon` (minimum-norm attacks in
:math:`\ell_2` and :math:`\ell_\infty`, train and test subsamples; at
:math:`\varepsilon = 0` it is the clean error) and the singular-value spectrum of the
penultimate features. The protocol, in full, is on the :doc:`image study
</image_protocol>` page and in the ``protocol`` entry of each JSON; the :doc:`tutorial
</tutorials/cifar10>` walks through the same steps in code.

**Protocol in brief.** :func:`lowrank.data.load_cifar10_binary` or
:func:`lowrank.data.load_fashion_mnist_binary` (official files, md5-verified);
:func:`lowrank.models.build_model`; :func:`lowrank.train.train_deep` under both losses
(bias by the midpoint rule for the differential loss);
:func:`lowrank.attacks.min_norm_perturbations` and
:func:`lowrank.attacks.adversarial_share`, with a fixed-budget PGD cross-check
(:func:`lowrank.attacks.pgd_success`); feature spectra by
:func:`lowrank.analysis.feature_spectrum`.

Every committed run of ``studies/image_binary.py`` (``figures/image_<dataset>_<pair>.json``) is shown
below with the command that produced it; nothing is retrained here.
"""

# %%
# The committed runs and the study's plotting function
# ----------------------------------------------------
# The study's plotting function is :func:`lowrank.images.plots.plot_image_binary`, which
# draws the two figures of a run from its JSON alone.
import shlex
import tempfile
from pathlib import Path

import lowrank
from lowrank.images.plots import plot_image_binary
from lowrank.io import load_json

ROOT = Path(lowrank.__file__).resolve().parents[1]  # the clone (pip install -e .)
LOSSES = ("cross_entropy", "differential")


def command(protocol: dict) -> str:
    """The command line that produced a run."""
    args = ["python", "studies/image_binary.py", "--dataset", protocol["dataset"], "--classes",
            *protocol["classes"], "--data-dir", "$LOWRANK_DATA", "--out", "figures"]
    if protocol["mode"] != "full":
        args.append(f"--{protocol['mode']}")
    return " ".join(a if a.startswith("$") else shlex.quote(a) for a in args)


def show(path: Path) -> list[Path]:
    """Print a run's command and key numbers; redraw its two figures; return their paths."""
    results = load_json(path)
    print(command(results["protocol"]))
    print()
    summary = results["summary"]["per_loss"]
    print(" " * 28 + "".join(f"{loss:>15}" for loss in LOSSES))
    for label, get in [
        ("clean test accuracy", lambda r: r["clean_test_acc"]),
        ("effective rank, features", lambda r: r["final_effective_rank"]),
        ("median min. L2 (test)", lambda r: r["median_norm"]["test"]["l2"]),
        ("median min. Linf (test)", lambda r: r["median_norm"]["test"]["linf"]),
    ]:
        print(f"{label:28s}" + "".join(f"{get(summary[loss]):15.4f}" for loss in LOSSES))
    for norm in ("l2", "linf"):
        for eps in summary[LOSSES[0]]["share"]["test"][norm]:
            shares = [summary[loss]["share"]["test"][norm][eps] for loss in LOSSES]
            label = f"share {norm}, eps {float(eps):.3g} (test)"
            print(f"{label:28s}" + "".join(f"{v:15.3f}" for v in shares))
    out = Path(tempfile.mkdtemp())
    plot_image_binary(results, out, path.stem)
    return [out / f"{path.stem}.png", out / f"{path.stem}_spectrum.png"]


# %%
# Fashion-MNIST: shirt against T-shirt/top
# ----------------------------------------
# Two classes that are hard to tell apart. Printed per loss: the clean test accuracy,
# the effective rank of the features at the last epoch, the median smallest adversarial
# perturbation found on the test subsample, and the share of test images with an
# adversarial example within each reported budget.
# Figures: the share against :math:`\varepsilon` (crosses: PGD at a fixed budget), then
# the feature spectra and the effective rank per epoch.
figure_files = show(ROOT / "figures" / "image_fashion_mnist_shirt_vs_t-shirt-top.json")

# %%
# Fashion-MNIST: sneaker against sandal
# -------------------------------------
# An easy pair: both models are almost always right, and the two losses end up with
# nearly the same shares.
figure_files = show(ROOT / "figures" / "image_fashion_mnist_sneaker_vs_sandal.json")
