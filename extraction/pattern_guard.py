"""Rules' regexes proven safe before use: every pattern is run on adversarial texts in a child
process that is killed when it takes longer than the time bound (catastrophic backtracking)."""
from __future__ import annotations

import json
import re
import selectors
import subprocess
import sys
import threading
import time

from extraction.errors import RulesError

# Every rule pattern is compiled with these flags, here and when vetted.
REGEX_FLAGS = re.IGNORECASE


def probe_strings(length: int) -> list[str]:
    """Adversarial texts: long runs and short runs ending in a mismatch (exponential blow-ups)."""
    probes = []
    for ch in ("a", "A", "1", "0", " ", "-", ".", ",", ":", "/", "*", "é", "\n", "\t"):
        probes += [ch * length, ch * 32 + "!", ch * 32 + "\x00"]
    for unit in ("1.2,", "0412-", "V-1", "Bs. 1", "a1", "ab ", "1 ", "a-", "1/", "0:", "x*"):
        probes.append((unit * (length // len(unit) + 1))[:length])
        probes.append(unit * 12 + "!")
    return probes


_PROBE_CHILD = r"""
import json, re, sys
items = json.loads(sys.stdin.readline())
probes = json.loads(sys.stdin.readline())
compiled = [re.compile(pattern, flags) for pattern, flags in items]
sys.stdout.write("ready\n")
sys.stdout.flush()
for (source, _flags), pattern in zip(items, compiled):
    # Runs of the pattern's own literal characters, ending in a mismatch, catch (x+x+)+y.
    own = sorted(set(re.findall(r"[A-Za-z0-9]", source)))[:40]
    for probe in probes + [c * 32 + "!" for c in own] + [c * 32 for c in own]:
        pattern.search(probe)
        pattern.fullmatch(probe)
    sys.stdout.write("done\n")
    sys.stdout.flush()
"""

_vetted: set[tuple[str, int, int]] = set()
_vetted_lock = threading.Lock()


def check_patterns_time_bound(patterns: list[tuple[str, str, str]], bound: float, length: int = 300) -> None:
    """Raise RulesError naming the first pattern that does not finish every probe within `bound`.

    `patterns` are (where, key, regex). Each regex gets `bound` seconds for all probes, in a child
    process that is killed when the bound is exceeded. Patterns already vetted are skipped.
    """
    length = max(64, length * 2)
    with _vetted_lock:
        todo = [p for p in dict.fromkeys(patterns) if (p[2], REGEX_FLAGS, length) not in _vetted]
    if not todo:
        return
    unique = list(dict.fromkeys(p[2] for p in todo))
    try:
        child = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _PROBE_CHILD],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
    except OSError as exc:
        raise RulesError(f"cannot start the regex probe process: {exc}") from exc
    try:
        assert child.stdin and child.stdout
        child.stdin.write(json.dumps([[p, int(REGEX_FLAGS)] for p in unique]) + "\n")
        child.stdin.write(json.dumps(probe_strings(length)) + "\n")
        child.stdin.flush()
        selector = selectors.DefaultSelector()
        selector.register(child.stdout, selectors.EVENT_READ)
        # The child's start-up is not charged to any pattern.
        if not selector.select(timeout=10.0) or child.stdout.readline().strip() != "ready":
            error = child.stderr.read() if child.poll() is not None and child.stderr else ""
            raise RulesError(f"regex probe process did not start: {error.strip()[-300:]}")
        for pattern in unique:
            deadline = time.monotonic() + bound
            line = ""
            while not line:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(timeout=remaining):
                    where, key = next((w, k) for w, k, p in todo if p == pattern)
                    raise RulesError(
                        f"{where}: key '{key}' pattern {pattern!r:.120} did not finish within {bound}s on "
                        "adversarial probe text (catastrophic backtracking); rewrite it without nested "
                        "or overlapping quantifiers"
                    )
                line = child.stdout.readline()
                if line == "":
                    error = child.stderr.read() if child.stderr else ""
                    raise RulesError(f"regex probe process failed: {error.strip()[-300:]}")
            with _vetted_lock:
                _vetted.add((pattern, REGEX_FLAGS, length))
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        for stream in (child.stdin, child.stdout, child.stderr):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass


