"""Static profile of the pairwise Triton kernel, compiled for an NVIDIA GPU on any machine.

Prints, per tile configuration (the candidates of ``lowrank.kernels._triton.TILE_CANDIDATES``
by default), the registers per thread, spilled bytes, shared memory and, for the hot loop
(the inner loop over full tiles), the SASS instructions, special-function (MUFU)
instructions and barriers per pair. A count of compiled code, not a timing:
``scripts/gpu_check.py`` times the same candidates on a GPU.

    python scripts/kernel_sass.py [--arch 90] [--no-grad] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv=None) -> list[dict]:
    from lowrank.kernels._sass import profile
    from lowrank.kernels._triton import TILE_CANDIDATES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", type=int, default=90, help="compute capability x 10 (default 90)")
    p.add_argument("--no-grad", action="store_true", help="the loss-only kernel")
    p.add_argument("--json", type=Path, help="also write the profiles (without the SASS) here")
    args = p.parse_args(argv)
    rows = []
    print(f"{'tile':>19} {'regs':>5} {'spill B':>7} {'smem B':>6} {'instr/pair':>10} "
          f"{'MUFU/pair':>9} {'BAR/tile':>8}")
    for cfg in TILE_CANDIDATES:
        try:
            r = profile(cfg["BLOCK_P"], cfg["BLOCK_N"], cfg["num_warps"],
                        need_grad=not args.no_grad, arch=args.arch,
                        fma_exp2_every=cfg.get("fma_exp2_every", 0))
        except RuntimeError as err:
            sys.exit(f"kernel_sass: {err}")
        r.pop("sass")
        rows.append(r)
        tile = f"{r['BLOCK_P']}x{r['BLOCK_N']}/{r['num_warps']}w" + (
            f"+fma{r['fma_exp2_every']}" if r["fma_exp2_every"] else "")
        print(f"{tile:>19} {r['registers']:>5} {r['spill_bytes']:>7} {r['shared_bytes']:>6} "
              f"{r['instructions_per_pair']:>10.2f} {r['mufu_per_pair']:>9.2f} {r['barriers']:>8}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), "utf-8")
    return rows


if __name__ == "__main__":
    main()
