"""Cancelation sources, one kind per module, and the any-of / all-of operators."""

from .base import CancelationSource, as_source
from .composite import AllOfSource, AnyOfSource, CompositeSource, all_of, any_of
from .condition import ConditionSource
from .observable import ObservableSource
from .parent import ParentSource
from .signal import SignalSource
from .timeout import TimeoutSource
from .token import TokenSource

__all__ = (
    "AllOfSource",
    "AnyOfSource",
    "CancelationSource",
    "CompositeSource",
    "ConditionSource",
    "ObservableSource",
    "ParentSource",
    "SignalSource",
    "TimeoutSource",
    "TokenSource",
    "all_of",
    "any_of",
    "as_source",
)
