"""PNG figures of every explanation, as ``ferlab explain`` and the docs gallery write them.

One figure per face and method (``<name>_<method>.png``), laid out like the papers' figures:
the face, then what the method shows, each panel captioned. :func:`save_tiles` draws any grid of
images, so other callers (the gallery, a web page) can lay out their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ferlab.explain._subject import Subject
from ferlab.explain.attention import (
    facial_attention_maps,
    se_channel_weights,
    self_attention_maps,
    stn_warp,
)
from ferlab.explain.cam import class_activation_maps, overlay_heatmap
from ferlab.explain.filters import filter_images

__all__ = [
    "Tile",
    "attention_figure",
    "facial_figure",
    "filters_figure",
    "heatmap_figure",
    "save_tiles",
    "se_figure",
    "stn_figure",
]

#: One panel: an image (uint8 gray, float gray in [0, 1], or BGR uint8) and its caption.
Tile = tuple[np.ndarray, str]


def _rgb(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8)
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _stretch(image: np.ndarray) -> np.ndarray:
    """Contrast-stretch a [0, 1] image between its 1st and 99th percentiles, for display:
    optimised images stay close to grey."""
    lo, hi = np.percentile(image, (1, 99))
    return np.clip((image - lo) / (hi - lo), 0, 1) if hi > lo else image


def _unit(heat: np.ndarray) -> np.ndarray:
    """A map scaled from its minimum (0) to its maximum (1)."""
    lo, hi = float(heat.min()), float(heat.max())
    return (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat)


def _colour_map(heat: np.ndarray) -> np.ndarray:
    """A map alone in jet colours (min to max), BGR uint8."""
    return overlay_heatmap(np.zeros(heat.shape, np.uint8), _unit(heat), alpha=1.0)


def save_tiles(
    rows: Sequence[Sequence[Tile]],
    path: str | Path,
    *,
    title: str | None = None,
    row_labels: Sequence[str] | None = None,
    tile_inches: float = 1.5,
    dpi: int = 100,
) -> Path:
    """Draw rows of captioned images as one PNG (rows may differ in length)."""
    from ferlab.plots import pyplot

    plt = pyplot()
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    width = tile_inches * n_cols + (0.8 if row_labels else 0)
    height = (tile_inches + 0.3) * n_rows + (0.4 if title else 0)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width, height), squeeze=False)
    for r in range(n_rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(rows[r]):
                ax.axis("off")
                continue
            image, caption = rows[r][c]
            ax.imshow(_rgb(image), interpolation="bilinear")
            ax.set_title(caption, fontsize=7)
        if row_labels:
            axes[r][0].set_ylabel(row_labels[r], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def heatmap_figure(
    model: Any,
    face: np.ndarray,
    path: str | Path,
    method: str = "gradcam",
    *,
    top: int = 3,
    layer: str | None = None,
) -> Path:
    """The face and its heat-map overlays for the ``top`` most probable classes."""
    first = class_activation_maps(model, face, method, layer=layer)
    order = np.argsort(-first.probs[0])[:top]
    tiles: list[Tile] = [(face, "input")]
    subject = Subject(model)
    for rank, cls in enumerate(order):
        heat = (
            first.maps[0]
            if rank == 0
            else class_activation_maps(model, face, method, int(cls), layer=layer).maps[0]
        )
        caption = f"{subject.label(int(cls))} {first.probs[0, cls]:.2f}"
        tiles.append((overlay_heatmap(face, heat), caption))
    return save_tiles([tiles], path, title=f"{method} at {first.layer}")


def stn_figure(model: Any, face: np.ndarray, path: str | Path) -> Path:
    """The face beside the spatial transformer's warp of it (Deep-Emotion's attention)."""
    warp = stn_warp(model, face)
    a, b, tx, c, d, ty = (float(v) for v in warp.theta[0].ravel())
    caption = f"θ=[{a:.2f} {b:.2f} {tx:.2f}; {c:.2f} {d:.2f} {ty:.2f}]"
    warped = np.clip(warp.warped[0], 0, 255).astype(np.uint8)
    return save_tiles([[(face, "input"), (warped, "warped")]], path, title=caption)


def attention_figure(
    model: Any, face: np.ndarray, path: str | Path, query: tuple[float, float] | None = None
) -> Path:
    """Per Multiple Self-Attention module: where the query attends (weighted mean of the heads,
    then each head with its learned weight)."""
    rows, labels = [], []
    for maps in self_attention_maps(model, face, query):
        qx, qy = maps.query
        marked = cv2.cvtColor(face, cv2.COLOR_GRAY2BGR)
        cv2.drawMarker(marked, (round(qx), round(qy)), (0, 255, 0), cv2.MARKER_CROSS, 6, 1)
        row: list[Tile] = [(marked, f"query ({qx:.0f}, {qy:.0f})")]
        mean = maps.combined[0]
        row.append((overlay_heatmap(face, _unit(mean)), f"weighted, peak {mean.max():.1f}×"))
        for k in range(maps.heads.shape[1]):
            head = maps.heads[0, k]
            caption = f"head {k} w={maps.weights[0, k]:.2f}, {head.max():.1f}×"
            row.append((overlay_heatmap(face, _unit(head)), caption))
        rows.append(row)
        labels.append(f"{maps.layer} {maps.grid[0]}×{maps.grid[1]}")
    title = "self-attention from the query (min to max; peak in multiples of uniform attention)"
    return save_tiles(rows, path, row_labels=labels, title=title)


def se_figure(model: Any, face: np.ndarray, path: str | Path) -> Path:
    """Bar chart of every squeeze-and-excitation layer's channel gates for the face."""
    from ferlab.plots import pyplot

    plt = pyplot()
    gates = se_channel_weights(model, face)
    fig, axes = plt.subplots(len(gates) + 1, 1, figsize=(7, 1.6 * (len(gates) + 1)), squeeze=False)
    axes[0][0].imshow(_rgb(face))
    axes[0][0].set_title("input", fontsize=8)
    axes[0][0].axis("off")
    for ax, (name, weights) in zip(axes[1:, 0], gates.items(), strict=True):
        w = weights[0]
        ax.bar(np.arange(len(w)), w, width=1.0, color="tab:blue")
        ax.set_ylim(0, 1)
        ax.set_xlim(-0.5, len(w) - 0.5)
        ax.set_title(f"{name}: {len(w)} channels, mean gate {w.mean():.2f}", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1][0].set_xlabel("channel", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def facial_figure(model: Any, face: np.ndarray, path: str | Path) -> Path:
    """Meen et al.'s Figs. 3–4 for one face: each attention map alone, applied by Eq. 1 and by
    Eq. 2."""
    rows, labels = [], []
    for fmap in facial_attention_maps(model, face):
        m, grid = fmap.maps[0], f"{fmap.grid[0]}×{fmap.grid[1]}"
        rows.append(
            [
                (face, "input"),
                (_colour_map(m), f"map {grid}, {m.min():.2f}–{m.max():.2f}"),
                (fmap.eq1[0], "Eq. 1: map·img"),
                (fmap.eq2[0], "Eq. 2: (1+map)·img"),
            ]
        )
        labels.append(f"{fmap.layer}\n→ {fmap.applied_to}")
    return save_tiles(rows, path, row_labels=labels, title="facial-feature attention")


def filters_figure(
    model: Any,
    path: str | Path,
    filters: Sequence[int] | None = None,
    *,
    count: int = 8,
    steps: int = 128,
    layer: str | None = None,
    progress: bool = False,
) -> Path:
    """Images that maximise filters of the last convolutional layer, captioned with the filter
    and the activation reached."""
    result = filter_images(model, filters, count=count, steps=steps, layer=layer, progress=progress)
    tiles = [
        (_stretch(img), f"filter {f}: {act:.2f}")
        for img, f, act in zip(result.images, result.filters, result.activation, strict=True)
    ]
    per_row = 4 if len(tiles) > 4 else len(tiles)
    rows = [tiles[i : i + per_row] for i in range(0, len(tiles), per_row)]
    title = f"filters of {result.layer} ({steps} steps from noise; contrast stretched)"
    return save_tiles(rows, path, title=title)
