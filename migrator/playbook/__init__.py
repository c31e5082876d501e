"""Playbooks: rollout plans (playbooks/*.toml) run step by step behind their gates, resumable, with an audit log.
Plan parsing and validation, gates, the runner, and its state."""
