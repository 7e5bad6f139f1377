"""creation ops (being filled in)."""
