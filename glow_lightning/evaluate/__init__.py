"""Pure evaluation maths (torch and numpy only, no Lightning): the importance-weighted test
bound, standard errors over images, and the AUROC of an out-of-distribution check."""

from glow_lightning.evaluate.bounds import iw_bits_per_dim, logmeanexp, mean_and_sem
from glow_lightning.evaluate.ood import auroc

__all__ = ["auroc", "iw_bits_per_dim", "logmeanexp", "mean_and_sem"]
