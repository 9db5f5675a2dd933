"""Where BAL+NUN puts its noise on synthetic MNIST, under each handling of the pixels that never vary.

Section 4.1 places NUN's noisy pixels with probability inversely proportional to each pixel's
standard deviation over the training images, undefined where that is 0. For each handling
(``nun_zero_std``: exclude, floor) and uniform placement (BAL+UN) beside them: how many training
pixels never vary, the share of the placement weight on them, and where the noisy pixels of the
seed's BAL+NUN land (on them, in the outer 2-pixel ring, on ink). Seconds on a CPU:

    python benchmarks/nun_placement.py
"""

from __future__ import annotations

import argparse

from harness import ROOT, machine_line, write_result


def main() -> None:
    import torch

    from cinv.data.synthetic_mnist import NOISE_FRACTION, ZERO_STD, noise_mask, std_weights, synthetic_splits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist.npz"), help="the full MNIST (.npz)")
    parser.add_argument("--seed", type=int, default=0, help="the synthetic data's seed")
    args = parser.parse_args()
    splits = synthetic_splits(args.mnist, args.seed)
    train, test = splits.train.images, splits.test.images
    std = train[:, 0].double().div(255).std(0)
    constant = std < 1e-2 / 255
    ring = torch.ones(28, 28, dtype=torch.bool)
    ring[2:-2, 2:-2] = False
    ink = test[:, 0] > 0
    placements = {"uniform (BAL+UN)": None, **{f"nun_zero_std={z}": std_weights(train, zero_std=z) for z in ZERO_STD}}
    rows = {}
    for name, weights in placements.items():
        mask = noise_mask(tuple(test.shape), NOISE_FRACTION, weights, torch.Generator().manual_seed(0))[:, 0]
        w = torch.ones(28, 28) if weights is None else weights
        rows[name] = {"weight_on_constant_pixels": round(float(w[constant].sum() / w.sum()), 4),
                      "noisy_pixels_on_constant_pixels": round(float(mask[:, constant].sum() / mask.sum()), 4),
                      "noisy_pixels_in_outer_ring": round(float(mask[:, ring].sum() / mask.sum()), 4),
                      "noisy_pixels_on_ink": round(float((mask & ink).sum() / mask.sum()), 4)}
    out = {"command": "python benchmarks/nun_placement.py", "machine": machine_line(), "seed": args.seed,
           "train_images": len(train), "test_images": len(test), "constant_pixels": int(constant.sum()),
           "ink_share_of_test_pixels": round(float(ink.float().mean()), 4), "placements": rows}
    write_result("nun_placement", out)
    for name, row in rows.items():
        print(name, row)


if __name__ == "__main__":
    main()
