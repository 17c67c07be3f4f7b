"""Non-finite guard: an optimiser step whose loss or gradients are not finite is never applied.

The step is skipped before ``optimizer.step()``, so the weights and the optimiser's moments never
see a NaN or an inf; the skip is counted (``train/skipped_steps``). After ``max_in_row`` skips in a
row the run stops; the weights are those of the last good step, so the final checkpoint is good.

Under DDP the decision is all-reduced (a rank with a bad loss or bad gradients makes every rank
skip), so ranks never diverge and no collective is left unmatched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

Reduce = Callable[[Tensor], Tensor]


def grad_norm(parameters: Iterable[torch.nn.Parameter]) -> Tensor:
    """0-d tensor: the global L2 norm of every gradient (0 without any; no host sync)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    return torch.nn.utils.get_total_norm(grads, error_if_nonfinite=False, foreach=None)


class NonFiniteGuard:
    """Counts skipped steps. ``note_loss`` runs in the training step, ``should_skip`` in the
    optimiser step after backward."""

    def __init__(self, max_in_row: int = 20) -> None:
        if max_in_row < 1:
            raise ValueError(f"max_in_row must be >= 1, got {max_in_row}")
        self.max_in_row = max_in_row
        self.skipped = 0  # total over the run
        self.in_row = 0
        self.bad_loss: Tensor | None = None
        self.grad_norm: Tensor | None = None  # the last step's gradient norm (before clipping)

    def note_loss(self, loss: Tensor) -> None:
        """Remember whether this batch's loss is non-finite (kept as a tensor: no host sync)."""
        self.bad_loss = ~torch.isfinite(loss.detach())

    def should_skip(self, parameters: Iterable[torch.nn.Parameter], reduce: Reduce,
                    check_grads: bool = True) -> bool:
        """Decide, identically on every rank, whether this step must be skipped; count it."""
        bad = self.bad_loss if self.bad_loss is not None else torch.tensor(False)
        if check_grads:
            self.grad_norm = grad_norm(parameters)  # one pass over the gradients a step
            bad = bad | ~torch.isfinite(self.grad_norm).to(bad.device)
        self.bad_loss = None
        skip = bool(reduce(bad.float()) > 0)
        self.in_row = self.in_row + 1 if skip else 0
        self.skipped += int(skip)
        return skip

    @property
    def tripped(self) -> bool:
        return self.in_row >= self.max_in_row

    def message(self, step: int, checkpoint: str | None, cause: str | None = None) -> str:
        """One line: what happened (``cause``, else the skipped steps), the last checkpoint
        whose weights passed (a later step's loss on them was finite), what to try."""
        where = f"'{checkpoint}'" if checkpoint else "none passed before the blow-up"
        what = cause or (f"{self.in_row} optimiser steps in a row had a non-finite loss or "
                         f"gradient and were skipped ({self.skipped} skipped in total)")
        return (f"training stopped at step {step}: {what}; last good checkpoint: {where}; try a "
                "lower optim.lr, optim.grad_clip=1.0, a longer optim.warmup_steps or "
                "model.coupling=additive")

    def state_dict(self) -> dict[str, int]:
        return {"skipped": self.skipped, "in_row": self.in_row}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.skipped = int(state.get("skipped", 0))
        self.in_row = int(state.get("in_row", 0))
