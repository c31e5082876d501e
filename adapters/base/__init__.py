"""The JobBackend protocol every adapter implements, and the frozen values that cross it: what migrator's routing,
drain, transfer, compat and playbooks know of a backend. migrator never imports a concrete adapter outside wiring
(and transfer, whose two-phase move is pairwise by nature). One module per contract, all re-exported here:
`from adapters.base import JobSpec` is how everyone imports them.

  jobs       a job on either backend: JobSpec, PendingJob, JobInfo, Enqueued, StateCount, states, RQ's defaults
  errors     BackendError and its kinds (unreachable, refused, schema missing, RQ's own exception types)
  inventory  what remains for a drain check: Place, Remaining, WorkerInfo, Arrival, Inventory
  protocol   JobBackend
  routing    the routing store: flags, audit log, seen job names, router presence
  playbook   the playbook state store
  periodic   the periodic schedules store
"""
from adapters.base.errors import *  # noqa: F401,F403
from adapters.base.inventory import *  # noqa: F401,F403
from adapters.base.jobs import *  # noqa: F401,F403
from adapters.base.periodic import *  # noqa: F401,F403
from adapters.base.playbook import *  # noqa: F401,F403
from adapters.base.protocol import *  # noqa: F401,F403
from adapters.base.routing import *  # noqa: F401,F403
