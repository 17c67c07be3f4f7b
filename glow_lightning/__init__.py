"""glow-lightning: Glow and RealNVP normalizing flows on images, trained with PyTorch Lightning.

The flow core (:mod:`glow_lightning.flows`, :mod:`glow_lightning.ops`) is pure PyTorch; Lightning
is only imported by the experiment layer (data, module, callbacks, cli).
"""

__version__ = "0.1.0"
