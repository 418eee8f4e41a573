"""The only trio code of the server: root nursery, connection actors, ledger actor, registry."""
