"""The one place that knows about numba.

The scoring kernels are plain Python loops over flat arrays. numba (a hard dependency of
PyOD, so always present where training happens) compiles them to machine code with the GIL
released; without numba the very same functions run as Python, slowly but with identical
results, so a frozen model can still be scored on a host where numba will not install.

``fastmath`` stays off on purpose: the kernels must reproduce the libraries' IEEE arithmetic
operation by operation, and fastmath would let LLVM reassociate sums.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_numba_njit: Callable[..., Any] | None
try:  # pragma: no cover - which branch runs depends on the host
    from numba import njit as _numba_njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    _numba_njit = None
    HAVE_NUMBA = False


def kernel(func: F) -> F:
    """Compile ``func`` with numba (nogil, on-disk cache) when numba is available."""
    if _numba_njit is None:  # pragma: no cover
        return func
    # cache=True keeps the compiled code in detectors/__pycache__ so that a process pays
    # the compile (~1 s per kernel) once per machine, not at every start.
    compiled: F = _numba_njit(cache=True, nogil=True)(func)
    return compiled


def python_version(func: Callable[..., Any]) -> Callable[..., Any]:
    """The uncompiled Python function behind a kernel (tests compare both)."""
    return getattr(func, "py_func", func)
