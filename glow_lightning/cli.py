"""``glow-lightning`` command line: train, test, sample, interpolate, manipulate, ablate.

Every command takes ``key=value`` words: config overrides (``model.steps=16``,
``experiment=cifar10_glow``) and, for the commands that read a checkpoint, their own keys
(``ckpt=``, ``n=``, ``temperature=``, ``out=``). :data:`COMMANDS` is the one table of commands:
a new command is a ``cmd_<name>(words) -> int`` function and a row there.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from glow_lightning.config import experiment_names, load_config
from glow_lightning.errors import ConfigError, GlowLightningError

EXAMPLES = """examples:
  glow-lightning train                                   # default Glow on the embedded MNIST digits
  glow-lightning train experiment=mnist_glow model.steps=16 trainer.devices=2 trainer.max_epochs=5
  glow-lightning test ckpt=runs/x/checkpoints/last.ckpt
  glow-lightning sample ckpt=runs/x/checkpoints/last.ckpt temperature=0.7 n=64 out=grid.png
  glow-lightning interpolate ckpt=runs/x/checkpoints/last.ckpt pairs=4 steps=8 out=interp.png
"""


def split_keys(words: Sequence[str], own: Collection[str]) -> tuple[dict[str, str], list[str]]:
    """``key=value`` words → (the command's own keys, the config overrides)."""
    mine, rest = {}, []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq:
            raise ConfigError(f"argument '{word}' is not of the form key=value (see --help)")
        if key in own:
            mine[key] = value
        else:
            rest.append(word)
    return mine, rest


def cmd_train(words: Sequence[str]) -> int:
    from lightning.pytorch.utilities import rank_zero_only

    from glow_lightning.run import train

    results = train(load_config(list(words)))
    bpd = results.get("test/bpd")
    if getattr(rank_zero_only, "rank", 0) == 0:  # once, not once per DDP process
        print(f"run directory: {results['run_dir']}")
        if results.get("planned_steps"):
            n = results["planned_steps"]
            print(f"steps: {results['steps']} (planned to fit trainer.budget_minutes; a run of "
                  f"fixed length: trainer.budget_minutes=null trainer.max_steps={n} "
                  f"optim.decay_steps={n})")
        if bpd is not None:
            print(f"test/bpd = {bpd:.4f}")
    return 0


def parse_number(key: str, text: str, kind: type[int] | type[float] = int) -> Any:
    """``text`` as an int (or float), else a ConfigError naming ``key``.

    >>> parse_number("n", "8"), parse_number("t", "0.5", float)
    (8, 0.5)
    """
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{key}={text!r} must be a{'n' if kind is int else ''} "
                          f"{kind.__name__}") from None


def need_ckpt(mine: dict[str, str]) -> str:
    ckpt = mine.get("ckpt")
    if not ckpt:
        raise ConfigError("missing ckpt=<path to a .ckpt file>")
    if not Path(ckpt).is_file():
        raise ConfigError(f"checkpoint '{ckpt}' does not exist; pass ckpt=<path to a .ckpt file>")
    return ckpt


def cmd_test(words: Sequence[str]) -> int:
    from glow_lightning.inference import evaluate_checkpoint

    mine, rest = split_keys(words, {"ckpt": ""})
    metrics = evaluate_checkpoint(need_ckpt(mine), rest)
    print(f"test/bpd = {metrics['test/bpd']:.4f}")
    if "test/bpd_worst" in metrics:
        print(f"  worst image: {metrics['test/bpd_worst']:.4f} bits/dim")
    levels = sorted(k for k in metrics if k.startswith("test/bits_level") and k.count("_") == 1)
    for key in levels:  # where the bits go: prior term + log-det of each level
        i = key.removeprefix("test/bits_level")
        print(f"  level {i}: {metrics[key]:+.4f} bits/dim = prior "
              f"{metrics[key + '_prior']:+.4f} + log-det {metrics[key + '_logdet']:+.4f}")
    if "test/bits_quantisation" in metrics:
        print(f"  quantisation: {metrics['test/bits_quantisation']:+.4f} bits/dim")
    return 0


def cmd_sample(words: Sequence[str]) -> int:
    from glow_lightning.inference import sample_checkpoint

    own = {"ckpt": "", "n": "64", "temperature": "0.7", "out": "samples.png", "seed": "0",
           "y": ""}
    mine, _ = split_keys(words, own)
    opts = {**own, **mine}
    y = parse_number("y", opts["y"]) if opts["y"] else None
    path = sample_checkpoint(need_ckpt(mine), parse_number("n", opts["n"]),
                             parse_number("temperature", opts["temperature"], float),
                             opts["out"], parse_number("seed", opts["seed"]), y)
    print(f"wrote {path}")
    return 0


def cmd_interpolate(words: Sequence[str]) -> int:
    from glow_lightning.inference import interpolate_checkpoint

    own = {"ckpt": "", "pairs": "4", "steps": "8", "out": "interpolations.png"}
    mine, rest = split_keys(words, own)
    opts = {**own, **mine}
    path = interpolate_checkpoint(need_ckpt(mine), parse_number("pairs", opts["pairs"]),
                                  parse_number("steps", opts["steps"]), opts["out"], rest)
    print(f"wrote {path}")
    return 0


def cmd_manipulate(words: Sequence[str]) -> int:
    from glow_lightning.manipulate import cmd_manipulate as run

    return run(words)


def cmd_ablate(words: Sequence[str]) -> int:
    from glow_lightning.ablate import cmd_ablate as run

    return run(words)


COMMANDS: dict[str, tuple[Callable[[Sequence[str]], int], str]] = {
    "train": (cmd_train, "train a flow (default: Glow on the embedded MNIST digits), then test it"),
    "test": (cmd_test, "test bits/dim of a checkpoint: ckpt=PATH [data overrides]"),
    "sample": (cmd_sample, "sample a grid: ckpt=PATH temperature=0.7 n=64 out=grid.png seed=0 "
               "[y=CLASS]"),
    "interpolate": (cmd_interpolate, "interpolate test images: ckpt=PATH pairs=4 steps=8 out=F"),
    "manipulate": (cmd_manipulate, "attribute manipulation: ckpt=PATH attribute=<class or 0/1 "
                   "label column> [source=<class>] strengths=-1,0,1,2 n=8 out=FILE"),
    "ablate": (cmd_ablate, "coupling x permutation grid + RealNVP x seeds: [ablation=digits] "
               "[budget_steps=N | budget_minutes=M] seeds=3 [cells=a,b] out=DIR [overrides]"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glow-lightning", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Glow and RealNVP normalizing flows with PyTorch Lightning and W&B.",
        epilog=EXAMPLES + f"\nexperiments: {', '.join(experiment_names())}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text,
                           epilog="overrides: any config key, e.g. model.steps=16")
        p.add_argument("words", nargs="*", metavar="key=value")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    func = COMMANDS[args.command][0]
    try:
        return func(args.words)
    except GlowLightningError as err:  # bad input: one clear line, no traceback wall
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
