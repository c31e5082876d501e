"""The legacy backend: RQ on Redis, enqueued through rq's API and inspected through its registries."""
from adapters.rq_backend.backend import RQBackend

__all__ = ["RQBackend"]
