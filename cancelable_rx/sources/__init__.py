"""Cancelation sources: the source interface (`base`), one source kind per module, and
the any-of / all-of operators."""

from .base import (
    AllOfSource,
    AnyOfSource,
    CancelationSource,
    CompositeSource,
    Disarm,
    SourceHost,
    all_of,
    any_of,
    as_source,
)
from .condition import ConditionSource, ResourceConditionSource
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
    "ResourceConditionSource",
    "Disarm",
    "ObservableSource",
    "ParentSource",
    "SignalSource",
    "SourceHost",
    "TimeoutSource",
    "TokenSource",
    "all_of",
    "any_of",
    "as_source",
)
