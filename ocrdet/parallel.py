"""An ordered ``map`` over worker processes, for the passes that decode every image of a data set once."""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

Mapper = Callable[[Callable[[Any], Any], list[Any]], Iterable[Any]]


def usable_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0))


@contextlib.contextmanager
def ordered_map(workers: int, chunksize: int = 1) -> Iterator[Mapper]:
    """An ordered ``map``: the builtin for one worker, else ``imap`` of a process pool.

    Workers are forked where the platform allows it: they start at once and, unlike spawn, need no
    ``if __name__ == "__main__"`` guard in the caller's script; they run only NumPy/OpenCV/libjpeg code.
    They must not call ``cv2.setNumThreads``: after a fork that deadlocks (OpenCV 5.0, pthread_cond_destroy).
    """
    if workers <= 1:
        yield map
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(workers) as pool:
        yield functools.partial(pool.imap, chunksize=chunksize)
