"""The model the service answers with, and its atomic replacement on SIGHUP.

Each request takes the current Recommender once, at its start (``deps.RecommenderDep``), so a reload that
swaps in a new one never changes the model under a request in flight: it finishes on the model it started
with. A folder that fails to load (missing, truncated, tampered, another format) is refused and logged, and
the old model keeps serving.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from deepmf.errors import DeepMFError
from deepmf.recommender import Recommender

logger = logging.getLogger("deepmf.service")


class ModelHolder:
    """The current Recommender of one process, and the folder it was loaded from."""

    def __init__(self, model_dir: str | os.PathLike[str], recommender: Recommender | None = None) -> None:
        self.model_dir = Path(model_dir)
        self._lock = threading.Lock()  # one reload at a time
        self.current = recommender if recommender is not None else Recommender.load(self.model_dir)
        self.reloads = 0

    def reload(self) -> bool:
        """Load the folder again and swap it in; on failure log why and keep the current model.

        Returns:
            Whether the new model is now serving.
        """
        with self._lock:
            start = time.perf_counter()
            try:
                fresh = Recommender.load(self.model_dir)
            except DeepMFError as exc:
                logger.error("reload refused, still serving the previous model: %s", exc)
                return False
            except Exception as exc:  # an unexpected failure must not take the service down either
                logger.exception("reload failed, still serving the previous model: %s", exc)
                return False
            self.current = fresh
            self.reloads += 1
            logger.info("reloaded %s (%s, %d users x %d items) in %.1f s", self.model_dir, fresh.model_name,
                        fresh.n_users, fresh.n_items, time.perf_counter() - start)
            return True
