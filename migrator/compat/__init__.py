"""Compat: whether a payload written by one code version binds to another version's job signature, and whether a
backend can carry it. Signatures, the lock file, the check of code against the lock, the scan of live payloads."""
