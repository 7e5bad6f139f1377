"""A minimal third-party unidl backend that delegates to NumPy."""
