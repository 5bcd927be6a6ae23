"""Numba kernels compiled once, not per task: on-disk caching for the project's kernels and for Cellpose's.

Cellpose 3.1 compiles `cellpose.dynamics`' kernels eagerly (explicit signatures, no `cache=True`) at every import,
and `import suite2p` imports it: ~7 s of every EXTRACT and SEGMENT on 2 cores. `install()`, called when
`ophys_extraction` is imported, adds an import hook that executes `UNCACHED_MODULES` with `numba.njit`/`numba.jit`
defaulting to `cache=True`. Nothing else changes: same source, signatures and options, so the same machine code;
numba then loads it from disk instead of compiling it.

Where the cache lives is numba's own choice, first writable location wins (numba.core.caching):
1. `$NUMBA_CACHE_DIR`: containers (the image sets it and fills it at build time with `ophys-extraction
   warm-up`) and clusters whose software is installed read-only (point it at the shared file system);
2. `__pycache__` beside each source file: the local executor, where `.venv/` and `src/` are writable;
3. the user's cache folder (`~/.cache/numba`): e.g. a read-only Apptainer image with a writable home.
An entry is keyed by the source file's absolute path and content hash (not its mtime), the numba and Python
versions, the signature and the host CPU model: a shared cache holds one entry per CPU model and nodes reuse it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

# Third-party modules whose numba kernels are declared without cache=True.
UNCACHED_MODULES = frozenset({"cellpose.dynamics", "cellpose.metrics"})
_NO_LOCATOR = "cannot cache function"  # numba's RuntimeError when no cache location is writable


def _with_cache(decorator: Callable[..., Any]) -> Callable[..., Any]:
    """`decorator` (numba.njit or numba.jit) with cache=True unless the caller chose; uncached where numba finds
    no writable cache location (the error comes when the function is wrapped, which compiles an eager signature)."""
    @functools.wraps(decorator)
    def cached(*args: Any, **kwargs: Any) -> Any:
        if "cache" in kwargs:
            return decorator(*args, **kwargs)
        try:
            result = decorator(*args, cache=True, **kwargs)
        except RuntimeError as err:  # bare @njit form: the function was wrapped already
            if _NO_LOCATOR not in str(err):
                raise
            return decorator(*args, **kwargs)
        if not callable(result) or hasattr(result, "py_func"):  # a dispatcher: the bare form
            return result

        def wrap(func: Callable[..., Any]) -> Any:
            try:
                return result(func)
            except RuntimeError as err:
                if _NO_LOCATOR not in str(err):
                    raise
                return decorator(*args, **kwargs)(func)
        return wrap
    return cached


def njit(**options: Any) -> Callable[..., Any]:
    """`numba.njit(cache=True, **options)` for the project's kernels (uncached where nothing is writable)."""
    import numba
    return _with_cache(numba.njit)(**options)


def cache_path(dispatcher: Any) -> str:
    """Where numba caches a jitted function, or why it does not."""
    path = getattr(getattr(dispatcher, "_cache", None), "cache_path", None)
    return str(path) if path else "nowhere (no writable cache location: compiled in every process)"


@contextlib.contextmanager
def caching_by_default() -> Iterator[None]:
    """While active, `numba.njit` and `numba.jit` cache unless told otherwise (for modules imported meanwhile)."""
    import numba
    originals = numba.njit, numba.jit
    numba.njit, numba.jit = _with_cache(numba.njit), _with_cache(numba.jit)
    try:
        yield
    finally:
        numba.njit, numba.jit = originals


class _CachingLoader(importlib.abc.Loader):
    """Executes a module under `caching_by_default()`; everything else is the original loader's."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with caching_by_default():
            self._loader.exec_module(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, ... (tracebacks, inspect)
        return getattr(self._loader, name)


class _CachingFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in UNCACHED_MODULES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _CachingLoader(spec.loader)
        return spec


def install() -> None:
    """Cache the kernels of `UNCACHED_MODULES` when they are imported (from now on; idempotent, imports nothing)."""
    if not any(isinstance(finder, _CachingFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _CachingFinder())
