"""deps.fold_in: a model's fold-ins run on the fold-in thread until timed quick, then inline (CPU only)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

pytest.importorskip("fastapi")

from deepmf.service import deps


class FakeRecommender:
    """Stands for a Recommender: fold_in only needs an object it can key weakly."""


def _busy(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def _threads_used(rec: FakeRecommender, seconds: float, calls: int) -> list[bool]:
    """For each call, whether the work ran on the event loop's own thread."""

    async def main() -> list[bool]:
        loop_thread = threading.get_ident()
        inline = []
        for _ in range(calls):
            def work() -> int:
                _busy(seconds)
                return threading.get_ident()
            inline.append(await deps.fold_in(rec, work) == loop_thread)
        return inline

    return asyncio.run(main())


def test_quick_fold_ins_move_inline_after_being_timed() -> None:
    inline = _threads_used(FakeRecommender(), 0.0, deps.TIMED_FOLD_INS + 3)
    assert inline == [False] * deps.TIMED_FOLD_INS + [True] * 3


def test_slow_fold_ins_stay_off_the_event_loop() -> None:
    inline = _threads_used(FakeRecommender(), 2 * deps.INLINE_BELOW_S, deps.TIMED_FOLD_INS + 2)
    assert not any(inline)


def test_each_model_is_timed_afresh() -> None:
    quick = FakeRecommender()
    _threads_used(quick, 0.0, deps.TIMED_FOLD_INS)
    assert _threads_used(quick, 0.0, 1) == [True]
    assert _threads_used(FakeRecommender(), 0.0, 1) == [False]  # a reloaded model starts on the thread
