"""The PyTorch backend of unidl. Importing this package does not import torch."""
