"""The NumPy backend of unidl: the living definition every other backend is checked against."""
