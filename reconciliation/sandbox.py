"""Parsing a statement in a child process with a memory and a time budget.

A hostile export can make a reader allocate far beyond what any file needs (calamine aborts the
whole process when an allocation fails) or run for minutes. The parse therefore runs in
`python -m reconciliation.sandbox`: its address space capped with resource.setrlimit, killed when
its time is up, the export on stdin and the parsed statement (or the StatementError) pickled on
stdout. A crash ends the child, never the web process, and answers `statement_too_complex`.
"""
from __future__ import annotations

import os
import pickle
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from reconciliation.errors import FormatNotDetected, StatementError
from reconciliation.movement import Statement

ROOT = Path(__file__).resolve().parents[1]
EXIT_OUT_OF_MEMORY = 3


class StatementTooComplex(StatementError):
    """The parse went past its memory or time budget (or its process died)."""

    @property
    def code(self) -> str:
        return "statement_too_complex"


def parse_in_child(data: bytes, format_id: str, formats_dir: str | os.PathLike | None, memory_mb: int,
                   timeout_seconds: float) -> Statement:
    """parse_statement(data, format_id, formats_dir), run in a child process within the budget."""
    command = [sys.executable, "-m", "reconciliation.sandbox", format_id, str(formats_dir or ""), str(memory_mb)]
    env = {name: value for name, value in os.environ.items() if name in ("PATH", "LANG", "LC_ALL", "PYTHONPATH")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    try:
        run = subprocess.run(command, input=data, capture_output=True, timeout=timeout_seconds, cwd=ROOT, env=env,
                             check=False)
    except subprocess.TimeoutExpired:  # run() killed the child
        raise StatementTooComplex(f"leer el archivo tomó más de {timeout_seconds:g} s") from None
    if run.returncode != 0 or not run.stdout:
        raise StatementTooComplex(f"leer el archivo necesitó más de {memory_mb} MB de memoria"
                                  if run.returncode in (EXIT_OUT_OF_MEMORY, -6, -9, -11) or run.returncode < 0
                                  else "el lector del archivo terminó sin respuesta")
    outcome: Any = pickle.loads(run.stdout)  # written by our own child, never by the client
    if isinstance(outcome, dict):
        raise _error_from(outcome)
    return outcome


def _error_from(fields: dict[str, Any]) -> StatementError:
    if fields.get("candidates") is not None:
        error: StatementError = FormatNotDetected(fields["candidates"])
    else:
        error = StatementError(fields["reason"], fields["line"], fields["format_id"])
    return error


def _child(format_id: str, formats_dir: str, memory_mb: int) -> int:
    limit = memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core file of a client's export
    data = sys.stdin.buffer.read()
    from reconciliation.formats import parse_statement  # noqa: PLC0415 - after the limit: its imports count

    try:
        outcome: Any = parse_statement(data, format_id, formats_dir or None)
    except StatementError as exc:
        outcome = {"reason": exc.reason, "line": exc.line, "format_id": exc.format_id,
                   "candidates": getattr(exc, "candidates", None)}
    except MemoryError:
        return EXIT_OUT_OF_MEMORY
    sys.stdout.buffer.write(pickle.dumps(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], sys.argv[2], int(sys.argv[3])))
