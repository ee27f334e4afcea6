"""recgoat_lib: the library behind the RecGOAT companion notebooks.

Importing it pins torch's CPU thread count (see `determinism`): results must not depend on it;
and it lets glibc's malloc reuse freed tensor memory (`memory.keep_freed_blocks`): only speed does.
"""
from .determinism import pin_threads
from .memory import keep_freed_blocks

__version__ = "0.1.0"
pin_threads()
keep_freed_blocks()
