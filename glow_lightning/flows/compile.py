"""Optional ``torch.compile`` of a flow's density path (training and ``log_prob``).

Compilation is in place (``nn.Module.compile``): the module, its parameters, buffers and
``state_dict`` keys are unchanged, so checkpoints and optimisers are unaffected. Only ``forward``
(hence ``log_prob``) is compiled; ``decode``/``sample`` stay eager, where compiling measured no
gain (the convolutions dominate and are the same oneDNN kernels either way).

Costs to know: the first call compiles (tens of seconds on a small CPU), a new batch size or grad
mode recompiles (train with ``drop_last=True``), and with ``dynamic=False`` (the default here)
more than ``torch._dynamo.config.cache_size_limit`` distinct shapes fall back to eager.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def compile_flow(model: nn.Module, **compile_kwargs: Any) -> nn.Module:
    """Compile ``model``'s forward in place with ``torch.compile`` and return the same module.

    ``compile_kwargs`` go to ``torch.compile`` (e.g. ``mode``, ``backend``); ``dynamic`` defaults
    to False so each batch size gets a static, fully specialised graph.
    """
    compile_kwargs.setdefault("dynamic", False)
    model.compile(**compile_kwargs)
    return model
