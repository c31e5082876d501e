"""`migrator demo`: a migration under live load on embedded local servers, ending in a ledger."""
