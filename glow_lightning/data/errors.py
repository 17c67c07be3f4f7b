"""The one exception type for bad data sources and bad images."""

from __future__ import annotations


class DataError(ValueError):
    """Bad data: a missing source, a wrong column, a corrupt or mis-shaped image, an empty split.

    The message is one line that names what is wrong and how to fix it, e.g.
    ``data source '/x' does not exist; point data.source= at ...``.
    """
