"""The protocol entries that every image-study JSON writes on top of its results."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any

import torch

from ..attacks import PGDBisection
from ..device import device_info
from .tasks import NORMS

__all__ = ["attack_protocol", "software_protocol", "training_protocol"]


def package_version(pkg: str) -> str:
    """Installed version of ``pkg``, or ``"unknown"``.

    Examples
    --------
    >>> package_version("surely-not-installed-xyz")
    'unknown'
    """
    try:
        from importlib.metadata import version

        return version(pkg)
    except Exception:  # noqa: BLE001
        return "unknown"


def attack_protocol(steps: int, eps_cfg: Mapping[str, Any], n_images: Mapping[str, int],
                    pgd_steps: int = 0, norms=NORMS) -> dict:
    """How the input-space minimum norms are measured (the ``attack`` protocol entry).

    Parameters
    ----------
    steps : int
        Iterations of the minimum-norm attack.
    eps_cfg : mapping
        An entry of :data:`lowrank.images.tasks.EPS`.
    n_images : mapping of str to int
        Attacked images per split.
    pgd_steps : int
        Steps of the fixed-eps PGD cross-check (0: none).
    norms : sequence of str
        Threat models run.

    Returns
    -------
    dict

    Examples
    --------
    >>> from lowrank.images.tasks import EPS
    >>> p = attack_protocol(50, EPS["fashion_mnist"], {"train": 8, "test": 8})
    >>> p["steps"], p["n_images_per_split"], p["score_scale"][:32]
    (50, {'train': 8, 'test': 8}, 's(x) / |s(x_clean)| (scale-free)')
    """
    pgd = PGDBisection()
    out = {"library": "foolbox " + package_version("foolbox"),
           "l2": "DDN (Rony et al. 2019), then PGD with bisection on eps",
           "linf": "FMN (Pintor et al. 2021), then PGD with bisection on eps",
           "norms": list(norms), "steps": steps,
           "pgd_bisection": {"steps": pgd.steps, "bisection_steps": pgd.bisection_steps,
                             "start": "clean image", "step": "2.5 * eps / steps",
                             "upper": "smallest norm found by DDN/FMN, else the whole box",
                             "multiclass_targets": "untargeted, and targeted at each of the "
                                                   + ("other classes" if pgd.targets is None else
                                                      f"{pgd.targets} classes with the largest "
                                                      "clean logits")
                                                   + " (more than two logits only)"},
           "norm_per_image": "minimum over the attacks (method records which)",
           "score_scale": "s(x) / |s(x_clean)| (scale-free); with C logits z(x) / |z_y(x_clean) - "
                          "max_{c != y} z_c(x_clean)|",
           "refinement": "30-step bisection on the scale of each found perturbation",
           "bounds": [0.0, 1.0], "n_images_per_split": {s: int(n_images[s]) for s in n_images},
           "subsample": "uniform random without replacement, fixed by seed; the same images "
                        "for every model of a seed",
           "conventions": "norm 0 for images misclassified clean, inf (listed in "
                          "failed_indices) if no attack found an adversarial example; "
                          "share(eps) = mean(norm <= eps) over all attacked images (so "
                          "share(0) = clean error)",
           "eps_grid": {n: list(eps_cfg[n]) for n in NORMS},
           "eps_reported": dict(eps_cfg["report"])}
    if pgd_steps:
        out["pgd_check"] = {"eps": dict(eps_cfg["pgd"]), "steps": pgd_steps,
                            "step": "2.5 * eps / steps", "random_start": True}
    return out


def training_protocol(losses, lr: float, epochs: int, batch_size: int) -> dict:
    """How the networks are trained end to end (the ``training`` protocol entry).

    Parameters
    ----------
    losses : sequence of str
    lr : float
        Adam's learning rate.
    epochs : int
        The stopping rule: a fixed number of epochs.
    batch_size : int

    Returns
    -------
    dict

    Examples
    --------
    >>> training_protocol(["cross_entropy"], 1e-3, 3, 8)["epochs"]
    3
    """
    return {"losses": list(losses), "same_initialisation": True, "optimizer": "adam", "lr": lr,
            "weight_decay": 0.0, "epochs": epochs, "stopping_rule": f"fixed budget: {epochs} epochs",
            "batch_size": batch_size,
            "batches": "class-balanced: half positives, half negatives",
            "differential_loss": "mean over all (positive, negative) pairs of the batch of "
                                 "log(1 + exp(-(s_i - s_j)))",
            "bias": "cross-entropy: trained; differential: midpoint between the smallest "
                    "positive and largest negative training score"}


def software_protocol(device) -> dict:
    """Versions, threads and device of the run.

    Parameters
    ----------
    device : str or torch.device

    Returns
    -------
    dict

    Examples
    --------
    >>> software_protocol("cpu")["device"]
    'cpu'
    """
    return {"torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), **device_info(device)}



