"""Typed dependencies of the routes."""

from __future__ import annotations

import asyncio
import statistics
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from deepmf.recommender import Recommender


async def current_recommender(request: Request) -> Recommender:
    """The model serving now, taken once per request (a reload does not change it under the request)."""
    return request.app.state.models.current


RecommenderDep = Annotated[Recommender, Depends(current_recommender)]

T = TypeVar("T")

# Fold-in takes from under a millisecond (MF's ridge) to ~0.2 s (deep models' L-BFGS). A slow one must not
# block the event loop; but FastAPI's thread pool hands each call to whichever of its threads is free, and
# torch keeps per-thread state (its OpenMP team, deepmf.models.foldin's one-thread setting): under load that
# cost ~2 ms of CPU per request, more than an MF fold-in (bench/serve_load.py, new_user mix, ML-100K MF: 4.0 ms
# of server CPU per request through the pool, 2.4 ms on one long-lived thread, 1.8 ms inline on the loop). So
# each model's first fold-ins run on one long-lived thread and are timed (CPU time of that thread, which other
# work on the machine does not inflate); a model whose median fold-in took under INLINE_BELOW_S (the first
# is slower: cold caches) runs them inline from then on.
INLINE_BELOW_S = 0.003
TIMED_FOLD_INS = 5
_FOLD_IN_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepmf-fold-in")
_fold_in_seconds: weakref.WeakKeyDictionary[Recommender, list[float]] = weakref.WeakKeyDictionary()


async def fold_in(rec: Recommender, work: Callable[[], T]) -> T:
    """Run ``work`` (a fold-in on ``rec``) inline when ``rec``'s fold-ins are quick, else on the fold-in thread."""
    timed = _fold_in_seconds.setdefault(rec, [])
    if len(timed) >= TIMED_FOLD_INS and statistics.median(timed) < INLINE_BELOW_S:
        return work()

    def timed_work() -> T:
        start = time.thread_time()
        try:
            return work()
        finally:
            if len(timed) < TIMED_FOLD_INS:
                timed.append(time.thread_time() - start)

    return await asyncio.get_running_loop().run_in_executor(_FOLD_IN_THREAD, timed_work)
