"""Routing: where each job name goes. The routing snapshot, the pure decision over it, the Router an app enqueues
through, the flags kept as flipper-client items in Postgres with their in-process cache, the audit log, the known
job names, the routers' presence (which version each process applies), and the status report."""
