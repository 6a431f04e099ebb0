"""The receiver: the HTTP API that accepts image paths (port 8000)."""
