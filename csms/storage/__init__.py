"""Storage adapters behind the ledger's port: SQLite (embedded default) and PostgreSQL."""
