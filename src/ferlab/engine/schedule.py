"""Learning-rate schedules evaluated per optimiser step.

Every schedule is a function of the step and of the total number of steps, so that a run with a
time budget can lay it over however many steps fit the budget and stretch or shrink it when the
estimate is revised. Plateau reduction is the only state: a multiplier updated once per epoch
from the validation accuracy, with Keras ``ReduceLROnPlateau`` semantics: the rate is reduced
at the ``patience``-th consecutive epoch without a new best, then counting starts again.
(PyTorch's scheduler of the same name reduces one epoch later, at ``patience + 1``.)
"""

from __future__ import annotations

import math
from typing import Any

from ferlab.engine.recipe import ScheduleSection

__all__ = ["LRSchedule"]


class LRSchedule:
    def __init__(self, cfg: ScheduleSection, base_lr: float, steps_per_epoch: int) -> None:
        self.cfg = cfg
        self.base_lr = base_lr
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.plateau_scale = 1.0
        self.best: float | None = None
        self.bad_epochs = 0

    def lr(self, step: int, total_steps: int) -> float:
        """Learning rate of optimiser step ``step`` (0-based) out of ``total_steps``."""
        c = self.cfg
        total = max(1, total_steps)
        frac = min(step / total, 1.0)
        if c.kind == "onecycle":
            return self._onecycle(frac)
        if c.kind == "step":
            factor = c.gamma ** sum(frac >= m for m in c.milestones)
        elif c.kind == "cosine":
            warm = c.warmup_epochs * self.steps_per_epoch
            span = max(1.0, total - warm)
            t = min(max(step - warm, 0) / span, 1.0)
            floor = c.min_lr / self.base_lr if self.base_lr else 0.0
            factor = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
        else:  # constant, plateau
            factor = 1.0
        lr = max(self.base_lr * factor * self.plateau_scale, c.min_lr)
        warm = c.warmup_epochs * self.steps_per_epoch
        if warm > 0 and step < warm:
            lr *= (step + 1) / warm
        return lr

    def _onecycle(self, frac: float) -> float:
        c = self.cfg
        start = self.base_lr / c.div_factor
        end = start / c.final_div_factor
        if frac < c.pct_start:
            t = frac / c.pct_start
            return _cos_interp(start, self.base_lr, t)
        t = (frac - c.pct_start) / max(1e-12, 1 - c.pct_start)
        return _cos_interp(self.base_lr, end, t)

    def epoch_end(self, val_accuracy: float) -> bool:
        """Feed one epoch's validation accuracy; returns True when the rate was reduced."""
        if self.cfg.kind != "plateau":
            return False
        if self.best is None or val_accuracy > self.best:
            self.best, self.bad_epochs = val_accuracy, 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs >= self.cfg.patience:
            floor = self.cfg.min_lr / self.base_lr if self.base_lr else 0.0
            self.plateau_scale = max(self.plateau_scale * self.cfg.factor, floor)
            self.bad_epochs = 0
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"plateau_scale": self.plateau_scale, "best": self.best, "bad": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau_scale = float(state["plateau_scale"])
        self.best = state["best"]
        self.bad_epochs = int(state["bad"])


def _cos_interp(a: float, b: float, t: float) -> float:
    """Cosine interpolation from ``a`` (t = 0) to ``b`` (t = 1)."""
    return b + (a - b) * 0.5 * (1 + math.cos(math.pi * min(max(t, 0.0), 1.0)))
