"""``glow-lightning`` command line: train, test, sample, interpolate, manipulate, ablate.

Every command takes ``key=value`` words: config overrides (``model.steps=16``,
``experiment=cifar10_glow``) and, for the commands that read a checkpoint, their own keys
(``ckpt=``, ``n=``, ``temperature=``, ``out=``). Each command is a module of
:mod:`glow_lightning.commands` with ``HELP`` and ``main(words) -> int``; :data:`COMMANDS` is the
one table of them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from glow_lightning.commands import ablate, interpolate, manipulate, sample, test, train
from glow_lightning.config import MODEL_CHOICES, experiment_names
from glow_lightning.errors import GlowLightningError

EXAMPLES = """examples:
  glow-lightning train                                   # default Glow on the embedded MNIST digits
  glow-lightning train experiment=mnist_glow model.steps=16 trainer.devices=2 trainer.max_epochs=5
  glow-lightning test ckpt=runs/x/checkpoints/last.ckpt
  glow-lightning test ckpt=runs/x/checkpoints/best.ckpt iw_samples=16 ood=digits_inverted
  glow-lightning sample ckpt=runs/x/checkpoints/last.ckpt temperature=0.7 n=64 out=grid.png
  glow-lightning interpolate ckpt=runs/x/checkpoints/last.ckpt pairs=4 steps=8 out=interp.png
  glow-lightning manipulate ckpt=runs/x/checkpoints/last.ckpt source=1 attribute=7
  glow-lightning ablate out=runs/ablation-digits
"""

COMMANDS: dict[str, ModuleType] = {
    "train": train, "test": test, "sample": sample, "interpolate": interpolate,
    "manipulate": manipulate, "ablate": ablate,
}


def choices() -> str:
    """The named model choices, one line per key (from the flows' registries)."""
    return "\n".join(f"  model.{key}: {', '.join(names)}" for key, names in MODEL_CHOICES.items())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glow-lightning", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Glow and RealNVP normalizing flows with PyTorch Lightning and W&B.",
        epilog=EXAMPLES + f"\nexperiments: {', '.join(experiment_names())}\n"
        f"model choices:\n{choices()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.HELP, description=command.HELP,
                           epilog="overrides: any config key, e.g. model.steps=16")
        p.add_argument("words", nargs="*", metavar="key=value")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(COMMANDS[args.command].main(args.words))
    except GlowLightningError as err:  # bad input: one clear line, no traceback wall
        print(f"error: {err}", file=sys.stderr)
        return int(getattr(err, "exit_code", 2))


if __name__ == "__main__":
    sys.exit(main())
