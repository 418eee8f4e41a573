"""The tariff the billing tests charge by: 0.40 EUR/kWh and 0.50 EUR a session, 19 % VAT."""

from __future__ import annotations

from typing import Any

STANDARD_TARIFF: dict[str, Any] = {
    "country_code": "DE",
    "party_id": "CSM",
    "id": "STANDARD",
    "currency": "EUR",
    "elements": [
        {
            "price_components": [
                {"type": "ENERGY", "price": 0.40, "vat": 19.0, "step_size": 1},
                {"type": "FLAT", "price": 0.50, "vat": 19.0, "step_size": 1},
            ]
        }
    ],
    "last_updated": "2026-01-01T00:00:00Z",
}
