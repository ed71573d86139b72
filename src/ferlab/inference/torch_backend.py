"""The PyTorch backend: a checkpoint's network run by PyTorch (the ``ferlab[train]`` extra).

The network is kept in the channels-last memory layout, which oneDNN's convolutions run
fastest (1.2× at batch 1 and 1.5× at batch 256 for the default model, docs/benchmarks.md).
``precision="bf16"`` runs it under bf16 autocast: about twice as fast on CPUs with native bf16
(AVX-512 BF16, AMX), changing few predictions (docs/models.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ferlab.errors import UnknownNameError
from ferlab.inference.model import PRECISIONS

__all__ = ["TorchBackend", "export_in_memory", "load_torch"]


class TorchBackend:
    """Runs a PyTorch network on test-time views (see :class:`~ferlab.inference.model.Backend`)."""

    runtime = "torch"

    def __init__(
        self,
        network: torch.nn.Module,
        device: str | torch.device = "cpu",
        *,
        precision: str = "fp32",
        channels_last: bool = True,
    ) -> None:
        if precision not in PRECISIONS:
            raise UnknownNameError("precision", precision, list(PRECISIONS))
        self.network = network
        self.device = str(device)
        self.precision = precision
        self.channels_last = channels_last

    @torch.inference_mode()
    def probs(self, views: np.ndarray) -> np.ndarray:
        """Softmax N×C averaged over the V views of V×N×C×H×W inputs (float32)."""
        net = self.network
        was_training = net.training
        net.eval()
        v, n = views.shape[:2]
        x = torch.from_numpy(views.reshape(v * n, *views.shape[2:])).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        kind = torch.device(self.device).type
        try:
            with torch.autocast(kind, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                logits = net(x).float()
        finally:
            net.train(was_training)
        return torch.softmax(logits, 1).reshape(v, n, -1).mean(0).cpu().numpy()


def load_torch(
    path: str | Path, device: str, precision: str = "fp32", *, threads: int | None = None
) -> tuple[TorchBackend, dict]:
    """A checkpoint's network on ``device`` (a resolved PyTorch device) and its metadata;
    ``threads`` sets PyTorch's intra-op threads (process-wide, as PyTorch has them)."""
    from ferlab.engine.checkpoint import load_checkpoint

    if threads is not None:
        torch.set_num_threads(threads)
    network, meta = load_checkpoint(path, device=device)
    network.to(memory_format=torch.channels_last)
    return TorchBackend(network, device, precision=precision), meta


def export_in_memory(path: str | Path) -> bytes:
    """A checkpoint exported to ONNX in memory (for ``runtime="onnx"`` without an ``.onnx``
    file beside it)."""
    from ferlab.engine.checkpoint import load_checkpoint
    from ferlab.export.onnx_export import network_to_onnx, require_onnx

    require_onnx()
    network, meta = load_checkpoint(path, device="cpu")
    meta["source"] = Path(path).name
    return network_to_onnx(network, meta, dynamic_batch=True).SerializeToString()
