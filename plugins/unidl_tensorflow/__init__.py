"""The TensorFlow backend of unidl. Importing this package does not import tensorflow."""
