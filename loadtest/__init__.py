"""Load testing: the fast OCPP load generator, the reference CSMS and the side-by-side bench."""
