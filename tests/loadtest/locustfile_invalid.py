"""A Locust file for the tests: chargers whose connector reports a status OCPP 1.6 does not
have, so that every such StatusNotification is answered with a CALLERROR."""

from __future__ import annotations

import random

from loadtest import ocpp_user
from loadtest.locust_charger import Charger, ChargerModel


class BadStatusCharger(ChargerModel):
    @property
    def connector_status(self) -> str:
        return "Exploded"


class BadStatusUser(ocpp_user.OcppChargerUser):
    def make_charger(self, charge_point_id_: str, now: float) -> Charger:
        settings = self.settings
        return BadStatusCharger(
            charge_point_id_, settings.profile, settings.tokens, random.Random(0), now
        )
