"""Cancellation across processes on Redis (the ``cancelable-rx[redis]`` extra).

* `DistributedToken`: a `CancelationToken` shared by every process that names it.
* `ClusterRegistry`: operations that opt in publish a heartbeat record; list them and
  cancel any of them from any process.
* `Deadline` and `JobTicket`: the remaining budget of an operation, handed to the process
  that continues its work.

Cancellation is state, not an event: a cancel is a create-only record with an expiry
(the first reason wins), announced on a channel to cut latency; listeners subscribe,
then read, read again after every reconnect and periodically.  ``docs/distributed.md``
is the guide.  Import it explicitly: ``from cancelable_rx.integrations.redis import ...``.
"""

from ._cluster import ClusterRegistry
from ._config import DEFAULT_NAMESPACE, RedisConnectError
from ._deadline import Deadline, JobOperation, JobTicket
from ._models import CancelPayload, OperationRecord, Origin
from ._token import DistributedToken
from ._tracked import TrackedOperation

__all__ = (
    "DEFAULT_NAMESPACE",
    "CancelPayload",
    "ClusterRegistry",
    "Deadline",
    "DistributedToken",
    "JobOperation",
    "JobTicket",
    "OperationRecord",
    "Origin",
    "RedisConnectError",
    "TrackedOperation",
)
