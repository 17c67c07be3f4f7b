"""``glow-lightning train [key=value ...]``: train a flow, then test it; ``print_config=true``
prints the resolved configuration (experiment file, its bases, the overrides) and stops."""

from __future__ import annotations

from collections.abc import Sequence

from glow_lightning.commands.args import parse_flag, split_keys

HELP = ("train a flow (default: Glow on the embedded MNIST digits), then test it; "
        "print_config=true prints the resolved config and stops")


def main(words: Sequence[str]) -> int:
    from glow_lightning.config import load_config, to_yaml

    mine, overrides = split_keys(words, {"print_config"})
    cfg = load_config(overrides)
    if parse_flag(mine, "print_config"):
        print(to_yaml(cfg), end="")
        return 0
    from lightning.pytorch.utilities import rank_zero_only

    from glow_lightning.config import check_conflicts
    from glow_lightning.train.run import train

    check_conflicts(cfg, list(overrides))
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
        info = results.get("test_info") or {}
        where = (f" ({info['test/checkpoint']} checkpoint, step "
                 f"{info.get('test/checkpoint_step')}, {info.get('test/split', 'test')} split)"
                 if "test/checkpoint" in info else "")
        print(f"test/bpd = {bpd:.4f}{where}")
    if results.get("data_note"):  # the data is not the version the paper's number was measured on
        print(f"note: {results['data_note']}")
