"""Pure model of the charging network: events, records, ledger rules. No I/O."""
