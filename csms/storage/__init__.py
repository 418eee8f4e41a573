"""Storage adapters behind the ledger's port: SQLite (embedded default); PostgreSQL later."""
