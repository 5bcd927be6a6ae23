"""`ophys-extraction warm-up`: load every numba kernel the steps run, compiling (and caching) the missing ones,
so that no task compiles: run it once where the cache lives (`make install`, a container image's build, a
cluster install). Prints where the cache is and how long it took."""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ophys-extraction warm-up", description=__doc__)
    parser.parse_args(argv)
    t0 = time.perf_counter()
    # Cellpose's eagerly compiled kernels (cached through ophys_extraction.numba_cache) and suite2p's cached ones.
    import cellpose.dynamics
    import suite2p  # noqa: F401

    from ophys_extraction import neuropil, traces
    from ophys_extraction.numba_cache import cache_path
    for dtype in sorted(traces.KERNEL_DTYPES, key=str):
        traces.warm_up(dtype)
    neuropil.warm_up()
    print(f"warm-up: numba kernels ready in {time.perf_counter() - t0:.1f} s (Cellpose's are cached in "
          f"{cache_path(cellpose.dynamics.steps2D)})", file=sys.stdout)
    return 0
