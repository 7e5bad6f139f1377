"""unidl's JAX backend, shipped as its own distribution (``pip install ./plugins/unidl_jax``)."""
