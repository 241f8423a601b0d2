"""wsreplay: record, replay and mock WebSocket traffic with plain-text scenario files."""

__version__ = "0.1.0"
