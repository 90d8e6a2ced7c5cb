"""Settings of the service: what `deepmf serve` passes to ``create_app`` (and to every worker process)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from deepmf.errors import ConfigError

# Request bodies above this are refused with 413: 10,000 prediction pairs with long string ids fit in it.
MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class ServiceSettings:
    """How the app behaves.

    Attributes:
        max_body_bytes: largest request body accepted (413 above it).
        cors_origins: origins allowed to call the API from a browser page served elsewhere; none by default
            (CORS closed: only the page the service serves itself can call it).
        reload_on_hup: reload the model folder on SIGHUP (set by ``deepmf serve``; off in tests that build the
            app in a thread, where a signal handler cannot be installed).
        threads: torch threads per process (None: leave torch's default). Requests are small, and concurrent
            requests already use the cores; see BENCHMARKS.md.
    """

    max_body_bytes: int = MAX_BODY_BYTES
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    reload_on_hup: bool = False
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ConfigError(f"max_body_bytes must be positive, got {self.max_body_bytes}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServiceSettings:
        values: dict[str, Any] = json.loads(text)
        return cls(**values)
