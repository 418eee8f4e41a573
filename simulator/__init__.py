"""Fleet simulator: virtual chargers and drivers speaking real OCPP (see its issue)."""
