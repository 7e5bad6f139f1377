"""conv ops (being filled in)."""
