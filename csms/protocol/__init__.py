"""Sans-I/O OCPP-J: text in, events and text out. No trio, no sockets, no clock reads."""
