"""Several CSMS processes and nodes on one PostgreSQL: which node holds which charger, commands
routed to the holder over LISTEN/NOTIFY, takeover of a charger that moved, one node for the
singleton duties, and `csms serve --workers N`."""
