"""FerlabFast: the network behind ferlab's shipped ``fast`` model, a sixth of ferlab_net's cost.

Not from one of the five reports. It is :class:`~ferlab.models.ferlab_net.FerlabNet` (VGG-style
3×3 conv + batch norm + ReLU stages, squeeze-and-excitation after the two deep stages, global
average pooling and one linear layer) made slim, and it is trained by distillation from the
shipped ``default`` model (``recipes/ferlab_fast.yaml``, :mod:`ferlab.engine.distill`). Choices:

* **Plain 3×3 convolutions, not depthwise-separable or inverted-residual blocks.** Measured side
  by side on one thread of the 2-core Intel Xeon (AVX-512 BF16, AMX) development machine, batch
  64 of 1×44×44: a MobileNetV1-style network of 11 M multiply-accumulates (MACs) ran at
  3,610 crops/s in ONNX Runtime fp32 but 1,392 in PyTorch fp32 and 2,053 in PyTorch bf16, and a
  MobileNetV2-style one of 23 M MACs at 997 / 357 / 452; a plain network of 15 M MACs ran at
  3,805 / 2,358 / 5,344. Depthwise convolutions save arithmetic but are memory-bound on a CPU,
  and they get nothing from AMX's bf16 matrix units.
* **Half of ferlab_net's widths (16/32/64/128) with one convolution fewer at 22×22 and at
  11×11.** The 44×44 and 22×22 stages hold most of the arithmetic per parameter; the 5×5 stage
  keeps its three convolutions because there a parameter costs 25 MACs instead of 121–484.
* **SE after the 11×11 and 5×5 stages** as in ferlab_net (reduction 8, so the 64-channel gate
  keeps 8 hidden units): it costs 0.03 M MACs.
* **Dropout 0.1 before the classifier** instead of ferlab_net's 0.3: a network this small
  underfits sooner than it overfits, and the teacher's soft targets already regularise.

Cost at 1×44×44: 18.4 M MACs and 0.44 M parameters (ferlab_net: 108.8 M and 1.91 M). Measured on
one thread of the machine above while it ran other jobs (load average about 8 on 2 cores, so
the ratios are the reliable part), batch 64, against ferlab_net in the same run: 2,099 crops/s
with ONNX Runtime fp32 (5.7× ferlab_net's 367), 1,427 with PyTorch fp32 (5.6×) and 2,874 with
PyTorch bf16 autocast (3.4×); the same network without SE ran at 3,024 / 2,159 / 4,798 crops/s
minutes earlier under a lighter load. Exported by ferlab's own ONNX path and run beside the
shipped ``default.onnx`` (ferlab_net) in one process (load about 10): 1,872 against 318 crops/s,
5.9×.

Input: 1×44×44 crops of the 48×48 faces, like ferlab_net; any size from 32 upwards works.
"""

from __future__ import annotations

from ferlab.models._registry import register_model
from ferlab.models.ferlab_net import FerlabNet

__all__ = ["ferlab_fast"]

#: Convolution widths per stage (a 2×2 max-pool follows every stage but the last).
FAST_STAGES: tuple[tuple[int, ...], ...] = ((16,), (32,), (64, 64), (128, 128, 128))


@register_model(source="ferlab (this project): slim FerlabNet distilled from the default model")
def ferlab_fast(**kwargs) -> FerlabNet:
    """ferlab's fast architecture (about 0.44 M parameters and 18 M MACs at 1×44×44)."""
    defaults = {"stages": FAST_STAGES, "se_stages": (2, 3), "se_reduction": 8, "drop_rate": 0.1}
    return FerlabNet(**{**defaults, **kwargs})
