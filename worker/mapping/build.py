"""Whether the mapping runs compiled, for the few rules written a second way for that build.

setup.py compiles every module of `worker/mapping` in one build and `worker/compiled.py` never
mixes compiled and pure modules in one process, so this module's own origin answers for all of
them. Compiled (mypyc), loops over code points and machine-integer arithmetic are native and
beat the C string methods or module calls they replace; interpreted they cost more, so the
pure path keeps the plain code.
"""

from __future__ import annotations

from typing import Final

#: Loaded from the compiled extension module, not from this source.
COMPILED: Final = not __file__.endswith(".py")
