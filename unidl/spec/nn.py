"""nn ops (being filled in)."""
