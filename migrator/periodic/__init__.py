"""Periodic jobs on the new backend: schedules (cron or interval) from migrator.toml, code or rq-scheduler, ticked by
every `migrator worker` and routed by the flags like any job."""
