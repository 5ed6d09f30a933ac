"""Unit tests need no server; they still share the session-scoped ``spark`` fixture."""
