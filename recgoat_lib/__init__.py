"""recgoat_lib: the library behind the RecGOAT companion notebooks."""
__version__ = "0.1.0"
