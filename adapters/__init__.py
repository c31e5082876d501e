"""Job backends: the RQ adapter (legacy) and the Postgres job queue (new). Adapters never import migrator."""
