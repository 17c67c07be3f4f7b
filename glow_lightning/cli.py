"""``glow-lightning`` command line: train, test, sample, interpolate.

Every command takes ``key=value`` words: config overrides (``model.steps=16``,
``experiment=cifar10_glow``) and, for the commands that read a checkpoint, their own keys
(``ckpt=``, ``n=``, ``temperature=``, ``out=``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from glow_lightning.config import ConfigError, experiment_names, load_config

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


def _need_ckpt(mine: dict[str, str]) -> str:
    ckpt = mine.get("ckpt")
    if not ckpt:
        raise ConfigError("missing ckpt=<path to a .ckpt file>")
    if not Path(ckpt).is_file():
        raise ConfigError(f"checkpoint '{ckpt}' does not exist; pass ckpt=<path to a .ckpt file>")
    return ckpt


def cmd_test(words: Sequence[str]) -> int:
    from glow_lightning.inference import test_checkpoint

    mine, rest = split_keys(words, {"ckpt": ""})
    bpd = test_checkpoint(_need_ckpt(mine), rest)
    print(f"test/bpd = {bpd:.4f}")
    return 0


def cmd_sample(words: Sequence[str]) -> int:
    from glow_lightning.inference import sample_checkpoint

    own = {"ckpt": "", "n": "64", "temperature": "0.7", "out": "samples.png", "seed": "0"}
    mine, _ = split_keys(words, own)
    opts = {**own, **mine}
    path = sample_checkpoint(_need_ckpt(mine), int(opts["n"]), float(opts["temperature"]),
                             opts["out"], int(opts["seed"]))
    print(f"wrote {path}")
    return 0


def cmd_interpolate(words: Sequence[str]) -> int:
    from glow_lightning.inference import interpolate_checkpoint

    own = {"ckpt": "", "pairs": "4", "steps": "8", "out": "interpolations.png"}
    mine, rest = split_keys(words, own)
    opts = {**own, **mine}
    path = interpolate_checkpoint(_need_ckpt(mine), int(opts["pairs"]), int(opts["steps"]),
                                  opts["out"], rest)
    print(f"wrote {path}")
    return 0


COMMANDS: dict[str, tuple[Callable[[Sequence[str]], int], str]] = {
    "train": (cmd_train, "train a flow (default: Glow on the embedded MNIST digits), then test it"),
    "test": (cmd_test, "test bits/dim of a checkpoint: ckpt=PATH [data overrides]"),
    "sample": (cmd_sample, "sample a grid: ckpt=PATH temperature=0.7 n=64 out=grid.png seed=0"),
    "interpolate": (cmd_interpolate, "interpolate test images: ckpt=PATH pairs=4 steps=8 out=F"),
}


def register(name: str, func: Callable[[Sequence[str]], int], help_text: str) -> None:
    """Add a sub-command (used by the ablation and manipulation modules)."""
    COMMANDS[name] = (func, help_text)


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


def _load_plugins() -> None:
    for module in ("glow_lightning.ablate", "glow_lightning.manipulate"):
        try:
            __import__(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


def main(argv: Sequence[str] | None = None) -> int:
    _load_plugins()
    args = _parser().parse_args(argv)
    func = COMMANDS[args.command][0]
    try:
        return func(args.words)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # data errors: one clear line, no traceback wall
        if type(err).__name__ == "DataError":
            print(f"error: {err}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    # Run through the imported module: plugins (ablate, manipulate) register there, not in __main__.
    from glow_lightning.cli import main as _main

    sys.exit(_main())
