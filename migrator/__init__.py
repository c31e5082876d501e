"""migrator: move background jobs from RQ to a Postgres job queue one job at a time."""
