"""Checks of a rules document's JSON: typed keys with messages that name the rule and key at
fault, and regexes compiled with the rules' flags (extraction/rules.py reads the document)."""
from __future__ import annotations

import re
from typing import Any

from extraction.errors import RulesError
from extraction.pattern_guard import REGEX_FLAGS


class _Checker:
    """Collects typed values from a rule object with error messages naming the rule and key."""

    def __init__(self, where: str, obj: Any, allowed: set[str]) -> None:
        if not isinstance(obj, dict):
            raise RulesError(f"{where}: must be a JSON object")
        unknown = sorted(set(obj) - allowed)
        if unknown:
            raise RulesError(f"{where}: unknown key(s) {', '.join(repr(k) for k in unknown)}")
        self.where, self.obj = where, obj

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., check=None, hint: str = "") -> Any:
        if key not in self.obj:
            if default is ...:
                raise RulesError(f"{self.where}: missing required key '{key}'")
            return default
        value = self.obj[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            ok = False
        else:
            ok = isinstance(value, kinds)
        if not ok or (check is not None and not check(value)):
            raise RulesError(f"{self.where}: key '{key}' {hint or 'has an invalid value'} (got {value!r:.80})")
        return value

    def str_list(self, key: str, default: Any = ..., non_empty: bool = False) -> list[str]:
        value = self.get(key, list, default, hint="must be a list of strings")
        if not all(isinstance(v, str) and v.strip() for v in value):
            raise RulesError(f"{self.where}: key '{key}' must be a list of non-empty strings")
        if non_empty and not value:
            raise RulesError(f"{self.where}: key '{key}' must not be empty")
        return value


def _compile(where: str, key: str, pattern: Any) -> re.Pattern:
    if not isinstance(pattern, str) or not pattern:
        raise RulesError(f"{where}: key '{key}' must be a non-empty regular expression string")
    if len(pattern) > 2000:
        raise RulesError(f"{where}: key '{key}' is longer than 2000 characters")
    try:
        return re.compile(pattern, REGEX_FLAGS)
    except re.error as exc:
        raise RulesError(f"{where}: key '{key}' is not a valid regular expression: {exc}") from exc
