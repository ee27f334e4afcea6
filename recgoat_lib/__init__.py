"""recgoat_lib: the library behind the RecGOAT companion notebooks.

Importing it pins torch's CPU thread count (see `determinism`): results must not depend on it.
"""
from .determinism import pin_threads

__version__ = "0.1.0"
pin_threads()
