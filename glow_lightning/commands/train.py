"""``glow-lightning train [key=value ...]``: train a flow, then test it."""

from __future__ import annotations

from collections.abc import Sequence

HELP = "train a flow (default: Glow on the embedded MNIST digits), then test it"


def main(words: Sequence[str]) -> int:
    from lightning.pytorch.utilities import rank_zero_only

    from glow_lightning.config import check_conflicts, load_config
    from glow_lightning.train.run import train

    cfg = load_config(list(words))
    check_conflicts(cfg, list(words))
    results = train(cfg)
    if getattr(rank_zero_only, "rank", 0) == 0:  # once, not once per DDP process
        report(results)
    return 0


def report(results: dict) -> None:
    """The run directory, the planned step count and the test bits/dim, one line each."""
    print(f"run directory: {results['run_dir']}")
    if results.get("planned_steps"):
        n = results["planned_steps"]
        print(f"steps: {results['steps']} (planned to fit trainer.budget_minutes; a run of "
              f"fixed length: trainer.budget_minutes=null trainer.max_steps={n} "
              f"optim.decay_steps={n})")
    bpd = results.get("test/bpd")
    if bpd is not None:
        print(f"test/bpd = {bpd:.4f}")
