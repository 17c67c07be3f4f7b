"""Sample grids at several temperatures (Glow, Kingma & Dhariwal 2018, Sec. 5.3 and Fig. 8)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from glow_lightning.grids import grid_columns, make_grid
from glow_lightning.ops import displayable

from .inputs import FlowModule, fixed_generator, flow_ready
from .media import log_scalars, publish_image
from .schedule import MediaSchedule

KIND = "samples"


class SampleGrid(MediaSchedule):
    """Grids of ``num_samples`` samples per temperature from the evaluation flow (EMA if enabled).

    The noise is fixed (a generator seeded with ``seed`` on every call), so grids are comparable
    across epochs and temperatures share the same standard-normal draws. Draws on the schedule of
    :class:`~glow_lightning.callbacks.schedule.MediaSchedule`, on rank zero.
    Writes ``media/samples/step{S:07d}_T{T:.2f}.png`` and ``step{S:07d}_temperatures.png`` (one
    row per temperature); W&B keys ``samples/T{T:.2f}`` and ``samples/temperatures``. Non-finite
    sample values are counted (``samples/nonfinite``, ``samples/nonfinite_T{T:.2f}``), shown as 0.
    Class-conditional flows get one grid row per class (``nrow`` samples of class ``r`` in row
    ``r``, cycling when there are more rows than classes).
    """

    def __init__(self, temperatures: Sequence[float] = (0.0, 0.5, 0.7, 0.8, 0.9, 1.0),
                 num_samples: int = 64, seed: int = 1234, every_n_validations: int = 1,
                 every_n_steps: int = 0) -> None:
        super().__init__(every_n_validations, every_n_steps)
        if not temperatures or num_samples < 1:
            raise ValueError("SampleGrid needs temperatures and num_samples >= 1")
        self.temperatures = tuple(float(t) for t in temperatures)
        self.num_samples = num_samples
        self.seed = seed
        self.nrow = grid_columns(num_samples)

    def samples(self, pl_module: FlowModule, temperature: float) -> Tensor:
        """Raw flow-space samples (num_samples, C, H, W) drawn with the fixed noise."""
        with pl_module.sampling() as flow:
            generator = fixed_generator(flow, self.seed)
            labels = self._labels(flow)
            return flow.sample(self.num_samples, temperature, y=labels, generator=generator)

    def _labels(self, flow: torch.nn.Module) -> Tensor | None:
        classes = int(getattr(flow, "num_classes", 0))
        if not classes:
            return None
        device = next(flow.parameters()).device
        return torch.arange(self.num_samples, device=device) // self.nrow % classes  # a row each

    def draw(self, trainer: L.Trainer, pl_module: FlowModule) -> None:
        self.log_grids(trainer, pl_module)

    def log_grids(self, trainer: L.Trainer, pl_module: FlowModule) -> list[Path]:
        """Draw, save and log every grid; rank zero only. Returns the PNG paths written."""
        if not trainer.is_global_zero or not flow_ready(pl_module.eval_flow()):
            return []
        images, counts = self._draw(pl_module)
        paths = [self._publish(trainer, t, images[t]) for t in self.temperatures]
        paths.append(self._publish_rows(trainer, images))
        self._report_nonfinite(trainer, counts)
        return paths

    def _draw(self, pl_module: FlowModule) -> tuple[dict[float, Tensor], dict[float, int]]:
        images, counts = {}, {}
        for t in self.temperatures:
            images[t], counts[t] = displayable(self.samples(pl_module, t), pl_module.n_bits)
        return images, counts

    def _publish(self, trainer: L.Trainer, t: float, images: Tensor) -> Path:
        name = f"step{trainer.global_step:07d}_T{t:.2f}.png"
        caption = f"T={t:.2f} epoch {trainer.current_epoch} step {trainer.global_step}"
        return publish_image(trainer, KIND, name, f"samples/T{t:.2f}",
                             make_grid(images, self.nrow), caption)

    def _publish_rows(self, trainer: L.Trainer, images: dict[float, Tensor]) -> Path:
        rows = torch.cat([images[t][: self.nrow] for t in self.temperatures])  # one row per T
        temps = ", ".join(f"{t:.2f}" for t in self.temperatures)
        caption = f"rows T={temps}; epoch {trainer.current_epoch} step {trainer.global_step}"
        return publish_image(trainer, KIND, f"step{trainer.global_step:07d}_temperatures.png",
                             "samples/temperatures", make_grid(rows, self.nrow), caption)

    def _report_nonfinite(self, trainer: L.Trainer, counts: dict[float, int]) -> None:
        metrics = {f"samples/nonfinite_T{t:.2f}": float(c) for t, c in counts.items()}
        metrics["samples/nonfinite"] = float(sum(counts.values()))
        log_scalars(trainer, metrics)
        bad = {t: c for t, c in counts.items() if c}
        if bad:
            rank_zero_warn(f"SampleGrid: non-finite sample values (temperature: count) {bad}; "
                           "they are shown as 0 in the grids")
