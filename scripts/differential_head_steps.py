"""How the normalized step size shapes the differential head on real features (theory page numbers).

Reads the cross-entropy backbone that ``studies/real_features.py`` checkpointed for one
seed (``<out>/.runs/real_features_<dataset>_<pair>/seed<k>/cross_entropy.pt``), rebuilds the
arm-A feature subsample exactly as the study does, and trains the differential head with
normalized gradient descent: at step 1 on the unshifted features, on features shifted along
the optimal normal (the arm-B grid of the committed JSON) and on features perturbed by a
relative 1e-15; then at step 0.3 (the study's step) and 0.1 for the full-mode budget.
Prints margin / optimal margin.

python scripts/differential_head_steps.py --classes Pullover Coat --seed 0 \
    --data-dir /usr/share/datasets/fashion-mnist --out figures
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lowrank.images.binary import prepare
from lowrank.images.heads import feature_predictions, offset_directions, retrain_head, shift_features
from lowrank.images.real_features import DIFF_STEPS_FULL, MODES, _fs_of, study_name
from lowrank.io import load_torch
from lowrank.models import build_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", nargs=2, default=["Pullover", "Coat"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--out", type=Path, default=Path("figures"))
    p.add_argument("--long-steps", type=int, default=DIFF_STEPS_FULL)
    p.add_argument("--short-steps", type=int, default=1000,
                   help="steps of the step-1 runs (the earlier sweep budget)")
    a = p.parse_args()
    torch.set_num_threads(2)
    args = argparse.Namespace(dataset="fashion_mnist", classes=a.classes, data_dir=a.data_dir,
                              checksums="official", download=False, quiet=True, seed=a.seed,
                              tiny=False, quick=False)
    budget, name = MODES["full"], study_name(args)
    x, y = prepare(args, budget, "cpu")["splits"]["train"]
    model = build_model(budget["model"], tuple(x.shape[1:]), width=budget["width"],
                        feature_dim=budget["feature_dim"])
    ck = a.out / ".runs" / name / f"seed{a.seed}" / "cross_entropy.pt"
    model.load_state_dict(load_torch(ck)["model"])
    fs = _fs_of(model.eval(), x, y, budget["head_points"], a.seed + 5)
    pred = feature_predictions(fs["F"], fs["y"])
    opt, u = pred["optimal_margin"], offset_directions(fs["F"], pred)["optimal_normal"]

    def ratio(F, steps, lr=None) -> float:
        h = retrain_head(F, fs["y"], "differential", "normalized", steps, seed=a.seed, lr=lr)
        return h["margin"] / opt if h["margin"] is not None else float("nan")

    sweep = json.loads((a.out / f"{name}.json").read_text())
    entry = next(s for s in sweep["seeds"] if s["seed"] == a.seed)
    points = entry["offset_sweep"]["optimal_normal"]["points"]
    steps = a.short_steps
    for c in (pt["c"] for pt in points):
        print(f"step 1, {steps} steps, shift c = {c:.4g}: {ratio(shift_features(fs['F'], c, u), steps):.6f}")
    g = torch.Generator().manual_seed(1)
    noise = 1e-15 * torch.randn(fs["F"].shape, generator=g, dtype=torch.float64)
    print(f"step 1, {steps} steps, features x (1 + 1e-15 noise): {ratio(fs['F'] * (1 + noise), steps):.6f}")
    print(f"step 0.3, {steps} steps, c = 0: {ratio(fs['F'], steps, 0.3):.14f}; largest c: "
          f"{ratio(shift_features(fs['F'], points[-1]['c'], u), steps, 0.3):.14f}")
    for lr in (0.3, 0.1):
        t0 = time.perf_counter()
        h = retrain_head(fs["F"], fs["y"], "differential", "normalized", a.long_steps, seed=a.seed,
                         lr=lr, records=12)
        hist = [(s, round(m / opt, 5)) for s, m in zip(h["history"]["step"], h["history"]["margin"])
                if m is not None]
        print(f"step {lr}, {a.long_steps} steps ({time.perf_counter() - t0:.0f} s): {hist[-4:]}")


if __name__ == "__main__":
    main()
