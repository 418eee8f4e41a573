"""The operator's HTTP side: the JSON API under `/api`, the live event stream, `/metrics`,
the chargers' file transfers and the dashboard, served by hypercorn inside the CSMS's
own `trio.run`."""
