"""Locust entry point: OCPP charge points against a CSMS.

    locust -f loadtest/locustfile.py --host ws://127.0.0.1:9000/ocpp \
        --headless -u 500 -r 50 -t 5m --ocpp-profile realistic
    locust --config loadtest/locust.conf

Importing `loadtest.ocpp_user` registers the `--ocpp-*` options (see `locust --help` with
this file). The CSMS must accept the chargers (`CSMS_UNKNOWN_STATIONS=accept`, or register
them: `python -m loadtest.locust_fleet stations ...`) and know the id tag pool
(`python -m loadtest.locust_fleet tokens ... > tokens.csv && csms tokens import tokens.csv`).

Stations of security profile 1 or 2 (one password for all of them): add
`--ocpp-password PW`, and for a wss:// host `--ocpp-ca-file CA.pem`. Profile 3: a client
certificate per charger, `--ocpp-cert-dir DIR` (`ID.pem`, `ID.key`), or one for the whole
process, `--ocpp-client-cert C.pem --ocpp-client-key K.pem` (its CN is one charger's id:
one user per process).
"""

from loadtest.ocpp_user import OcppChargerUser

__all__ = ["OcppChargerUser"]
