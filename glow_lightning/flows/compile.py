"""Optional ``torch.compile`` of a flow's density path (training and ``log_prob``).

Compilation is in place (``nn.Module.compile``): the module, its parameters, buffers and
``state_dict`` keys are unchanged, so checkpoints and optimisers are unaffected. Only ``forward``
(hence ``log_prob``) is compiled; ``decode``/``sample`` stay eager, where compiling measured no
gain (the convolutions dominate and are the same oneDNN kernels either way).

A flow whose ActNorms have not seen their first batch yet is compiled only after that batch: the
data-dependent init reads tensors into Python (a graph break), and a graph traced through it
stays split into dozens of pieces after the init is done (measured: 0.3× the speed of one
whole-model graph). Until then the forward runs eagerly.

Costs to know: the first compiled call compiles (1.5–2 minutes for a config S Glow on 2 CPU
cores; seconds when inductor's on-disk cache already holds the graph), a new batch size or grad
mode recompiles (train with ``drop_last=True``), and with ``dynamic=False`` (the default here)
more than ``torch._dynamo.config.cache_size_limit`` distinct shapes fall back to eager. On that
CPU a compiled config S training step ran 1.3× the eager one (benchmarks/RESULTS.md); inductor's
C++ wrapper (``options={"cpp_wrapper": True}``) compiled for ~6 minutes and was not faster.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from glow_lightning.flows.actnorm import is_initialised


def compile_flow(model: nn.Module, **compile_kwargs: Any) -> nn.Module:
    """Compile ``model``'s forward in place with ``torch.compile`` and return the same module.

    ``compile_kwargs`` go to ``torch.compile`` (e.g. ``mode``, ``backend``); ``dynamic`` defaults
    to False so each batch size gets a static, fully specialised graph. If an ActNorm inside
    ``model`` is not yet initialised, compilation waits for the first forward that initialises it.
    """
    compile_kwargs.setdefault("dynamic", False)
    if is_initialised(model):
        model.compile(**compile_kwargs)
        return model

    def compile_once_initialised(module: nn.Module, args: Any, output: Any) -> None:
        if is_initialised(module):
            handle.remove()
            module.compile(**compile_kwargs)

    handle = model.register_forward_hook(compile_once_initialised)
    return model
