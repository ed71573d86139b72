"""Training step of Meen et al.'s facial-attention models: the emotion network's first convolution
folded into the attention layer against the plain order, side by side in one process.

With all features concatenated (Model 2), the attention layer
(:class:`ferlab.layers.feature_attention.FeatureMapAttention`) applies the emotion network's first
convolution itself, to the small maps before interpolating them, instead of building the
many-channel input at full size (the same function). The reference
is the plain order: a no-op hook on that convolution makes the model build the combined input and
call it, as it does for explanations. The variants that do not fold (products with the image,
averaged maps) are measured too, as controls: they should show no difference. One thread, fp32
(the paper schedule's precision for this family), channels-last, batch 128 at 44×44, width 0.125
(the reproduction's CPU size); rounds alternate the two orders so that a busy machine slows both
alike. Results: the "Facial-attention training step" section of docs/benchmarks.md.

    OMP_NUM_THREADS=1 python benchmarks/bench_feature_attention.py [--rounds 3] [--steps 4]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F
from doc_section import machine, write_doc_section

from ferlab.models import create_model

VARIANTS = {
    "Model 1, all features": ("facial_attention_m1", {"features": "all", "combine": "weighted"}),
    "Model 1, averaging": ("facial_attention_m1", {"features": "average", "combine": "weighted"}),
    "Model 2, all features": ("facial_attention_m2", {"features": "all", "combine": "concat"}),
    "Model 2, averaging": ("facial_attention_m2", {"features": "average", "combine": "weighted"}),
}


def _watch(*_: object) -> None:
    """A hook that does nothing: watched, the first convolution runs as a module (plain order)."""


def step_seconds(model: torch.nn.Module, steps: int) -> float:
    """Median seconds of a training step (forward, backward, SGD) after one warm-up step."""
    x = torch.randn(128, 1, 44, 44).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (128,))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
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
        first_conv = model.emotion_net.stages[0][0]
        best = {"folded": float("inf"), "plain": float("inf")}
        for _ in range(args.rounds):
            for which in best:
                hooks = [first_conv.register_forward_hook(_watch)] if which == "plain" else []
                best[which] = min(best[which], step_seconds(model, args.steps))
                for hook in hooks:
                    hook.remove()
        rows.append((label, best["folded"], best["plain"]))
        print(f"{label}: {1000 * best['folded']:.0f} ms, plain order {1000 * best['plain']:.0f} ms")
    controls = [b / a for label, a, b in rows if label != "Model 2, all features"]
    lines = [
        "## Facial-attention training step",
        "",
        "`benchmarks/bench_feature_attention.py`: one training step (batch 128, 44×44,",
        "fp32, channels-last, one thread, width 0.125) of Meen et al.'s Models 1 and 2, the",
        "model as it is (with all features concatenated, Model 2, the attention layer applies the",
        "emotion network's first convolution to the small maps before interpolating them)",
        "against the plain order (the combined input built at full size, then convolved), rounds",
        f"alternating, best of {args.rounds}. Only Model 2, all features, folds; the other rows",
        "are controls.",
        f"Machine: {machine(load)}.",
        "",
        "| model | as it is (ms) | plain order (ms) | speed-up |",
        "| --- | ---: | ---: | ---: |",
        *(f"| {lbl} | {1000 * a:.0f} | {1000 * b:.0f} | {b / a:.2f}× |" for lbl, a, b in rows),
        "",
        f"The controls' speed-ups span {min(controls):.2f}× to {max(controls):.2f}×: the noise of"
        " this run, as they compute the same thing both ways.",
        "",
    ]
    write_doc_section(lines)


if __name__ == "__main__":
    main()
