"""Transfer: move not-yet-started jobs from one backend to the other, exactly once, even when killed midway.

This package names both concrete adapters on purpose (the layering contract allows it here and in wiring only):
the two-phase protocol differs per direction. RQ -> Postgres claims ids out of RQ atomically in Lua and lands
them in Postgres with a marker; Postgres -> RQ takes rows out in one statement and lands them in one MULTI with
a marker in Redis. Each half holds its backend's atomic step, and only the pair knows the order in which a crash
at any point can be settled; a generic JobBackend interface would have to expose both halves anyway.
"""
