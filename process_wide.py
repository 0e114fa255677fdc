"""One shared instance per process, built on first use (models, rules, the orchestrator)."""
from __future__ import annotations

import functools
import threading
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class ProcessWide(Generic[T]):
    """Calling it returns the process's instance, building it once even when threads race."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._instance: T | None = None
        functools.update_wrapper(self, factory)

    def __call__(self) -> T:
        with self._lock:
            if self._instance is None:
                self._instance = self._factory()
            return self._instance

    def peek(self) -> T | None:
        """The instance if something already built it; never builds one."""
        return self._instance


def process_wide(factory: Callable[[], T]) -> ProcessWide[T]:
    return ProcessWide(factory)
