"""WebSocket gateway worker: protocol core, connection I/O, fan-out and drain."""
