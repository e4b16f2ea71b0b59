"""The package's logger, and a quick test of its DEBUG level for the hot paths.

A `logging.Logger` caches ``isEnabledFor()``'s answer per level in ``_cache`` (CPython's
logging: the dict is cleared, never replaced, whenever a level changes or logging is
disabled), so ``debug_cached(DEBUG) is False`` answers "no debug logging" without the
Python-level call.  Anything else (no answer cached yet, or a logging module without that
attribute) must ask ``logger.isEnabledFor(DEBUG)`` itself::

    if debug_cached(DEBUG) is not False and logger.isEnabledFor(DEBUG):
        logger.debug(...)
"""

from __future__ import annotations

import logging
from collections.abc import Callable

__all__ = ("DEBUG", "debug_cached", "logger")

logger = logging.getLogger("cancelable_rx")
DEBUG = logging.DEBUG
# (A logger class overriding isEnabledFor -- logging.setLoggerClass before this import --
# is always asked: its answer may not be the cached one.)
_plain = type(logger).isEnabledFor is logging.Logger.isEnabledFor
_levels: dict[int, bool] = getattr(logger, "_cache", {}) if _plain else {}
debug_cached: Callable[[int], bool | None] = _levels.get
