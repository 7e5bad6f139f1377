"""losses ops (being filled in)."""
