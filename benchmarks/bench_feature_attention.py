"""Training step of Meen et al.'s facial-attention models: the attention layer against the order
it replaced, side by side in one process.

The reference is the previous forward of
:class:`ferlab.layers.feature_attention.FeatureMapAttention`: the learned map weights applied before
the bilinear interpolation, the maps interpolated in the default (NCHW) layout. The layer now
interpolates in the features' layout and weighs after the interpolation (linear, so the same
result). One thread, bf16 autocast, channels-last, batch 128 at 44×44, width 0.125 (the
reproduction's CPU size); rounds alternate the two orders so that a busy machine slows both alike.
Results: the "Facial-attention training step" section of docs/benchmarks.md.

    OMP_NUM_THREADS=1 python benchmarks/bench_feature_attention.py [--rounds 3] [--steps 4]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F
from doc_section import machine, write_doc_section

from ferlab.layers.feature_attention import FeatureMapAttention
from ferlab.models import create_model

VARIANTS = {
    "Model 1, all features": ("facial_attention_m1", {"features": "all", "combine": "weighted"}),
    "Model 1, averaging": ("facial_attention_m1", {"features": "average", "combine": "weighted"}),
    "Model 2, all features": ("facial_attention_m2", {"features": "all", "combine": "concat"}),
    "Model 2, averaging": ("facial_attention_m2", {"features": "average", "combine": "weighted"}),
}


def reference_forward(self: FeatureMapAttention, x: torch.Tensor, feats: torch.Tensor):
    """The order the layer used before: weigh, then interpolate in the default layout."""
    maps = self.attention_maps(feats)
    if maps.shape[-2:] != x.shape[-2:]:
        maps = F.interpolate(maps, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return self.combine_maps(x, maps)


def step_seconds(model: torch.nn.Module, steps: int) -> float:
    """Median seconds of a training step (forward, backward, SGD) after one warm-up step."""
    x = torch.randn(128, 1, 44, 44).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (128,))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[steps // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    rows = []
    for label, (name, kwargs) in VARIANTS.items():
        torch.manual_seed(0)
        model = create_model(name, width=0.125, **kwargs)
        model.to(memory_format=torch.channels_last).train()
        layer = model.attention
        best = {"layer": float("inf"), "reference": float("inf")}
        for _ in range(args.rounds):
            for which in best:
                # An instance attribute shadows the class's forward for this layer only.
                if which == "reference":
                    layer.forward = reference_forward.__get__(layer)
                else:
                    layer.__dict__.pop("forward", None)
                best[which] = min(best[which], step_seconds(model, args.steps))
        layer.__dict__.pop("forward", None)
        rows.append((label, best["layer"], best["reference"]))
        print(
            f"{label}: {1000 * best['layer']:.0f} ms, reference {1000 * best['reference']:.0f} ms"
        )
    lines = [
        "## Facial-attention training step",
        "",
        "`benchmarks/bench_feature_attention.py`: one training step (batch 128, 44×44,",
        "bf16 autocast, channels-last, one thread, width 0.125) of Meen et al.'s Models 1 and 2,",
        "with the attention layer as it is (maps interpolated in the features' layout, learned",
        "weights after the interpolation) against its previous order (weights first, NCHW",
        f"interpolation), rounds alternating, best of {args.rounds}.",
        f"Machine: {machine(load)}.",
        "",
        "| model | layer (ms) | previous order (ms) | speed-up |",
        "| --- | ---: | ---: | ---: |",
        *(f"| {lbl} | {1000 * a:.0f} | {1000 * b:.0f} | {b / a:.2f}× |" for lbl, a, b in rows),
        "",
    ]
    write_doc_section(lines)


if __name__ == "__main__":
    main()
