"""Errors and warnings of the dataset layer.

Two kinds of failure are kept apart on purpose:

- `ConfigError` (from ``hybrid_vla_ros.schema``): the topic map does not fit the bags (a
  topic, field or joint it names is not there). Every bag would fail the same way, so
  loading stops and the message says what the bag has instead.
- `BagContentError`: one bag is unreadable or its content is unusable (truncated, corrupt,
  no control steps). The dataset skips that bag with a `DataWarning` and counts it.
"""

from __future__ import annotations


class BagContentError(ValueError):
    """One bag cannot be turned into an episode (corrupt, truncated, empty); the message
    names the bag and the reason. The dataset skips such a bag and counts it."""


class DataWarning(UserWarning):
    """Something about the data the user should know (a skipped bag, resized images)."""
