"""Long CPU-bound calls made by a web process (the OCR of a batch when no worker runs it).

Under gunicorn's gevent worker every request is a greenlet on one event loop: OCR run there would
hold every other request of the process until it ends. It runs in gevent's pool of real threads
instead (ONNX Runtime releases the GIL), while the loop keeps serving. Elsewhere it just runs.
"""
from __future__ import annotations

from typing import Any, Callable, TypeVar

from gevent import get_hub, monkey

T = TypeVar("T")


def run_blocking(func: Callable[..., T], *args: Any) -> T:
    if not monkey.is_module_patched("threading"):
        return func(*args)
    return get_hub().threadpool.apply(func, args)
