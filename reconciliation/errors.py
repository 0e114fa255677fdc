"""The errors a statement upload can end in. Each names the line so staff can find it."""
from __future__ import annotations


class StatementError(ValueError):
    """A file or a row that cannot be read. Nothing of the file is returned when this is raised."""

    def __init__(self, message: str, line: int | None = None, format_id: str | None = None) -> None:
        self.line = line
        self.format_id = format_id
        self.reason = message
        where = f"línea {line}: " if line is not None else ""
        fmt = f"[{format_id}] " if format_id else ""
        super().__init__(f"{fmt}{where}{message}")

    @property
    def code(self) -> str:
        return "statement_unreadable"

    def to_error(self) -> dict:
        """The `error` object of the service's 400 response."""
        error = {"code": self.code, "message": str(self), "linea": self.line, "formato": self.format_id}
        candidates = getattr(self, "candidates", None)
        if candidates is not None:
            error["candidatos"] = list(candidates)
        return error


class FormatNotDetected(StatementError):
    """Auto-detection found no format, or more than one, that fits the file."""

    def __init__(self, candidates: list[str]) -> None:
        self.candidates = list(candidates)
        if candidates:
            message = "el archivo encaja en varios formatos, indique uno: " + ", ".join(candidates)
        else:
            message = "ningún formato conocido reconoce el archivo"
        super().__init__(message)

    @property
    def code(self) -> str:
        return "statement_format_ambiguous" if self.candidates else "statement_format_unknown"


class FormatConfigError(ValueError):
    """A mapping in config/statements/ is malformed (a deployment error, not a user error)."""
