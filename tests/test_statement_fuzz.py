"""Hostile statement files: any damage gives a StatementError (a 4xx for the service), never a crash."""
from __future__ import annotations

import random

import pytest

from reconciliation import StatementError, parse_statement
from reconciliation.spec import load_specs
from tools.statement_generator import generate_statement

INSERTS = (b",", b"\t", b";", b"\n", b"^", b":61:", b"<tr>", b'"', b"\x00", b"E+10", b"\xff\xfe", b"<?xml?>")


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    roll = rng.random()
    if roll < 0.4:
        for _ in range(rng.randint(1, 5)):
            out[rng.randrange(len(out))] = rng.randrange(256)
    elif roll < 0.7:
        start = rng.randrange(len(out))
        del out[start:start + rng.randint(1, 50)]
    else:
        start = rng.randrange(len(out))
        out[start:start] = rng.choice(INSERTS)
    return bytes(out)


@pytest.mark.parametrize("format_id", sorted(load_specs()))
def test_damaged_files_never_crash_the_reader(format_id):
    original = generate_statement(format_id, seed=9, receipts=20).data
    rng = random.Random(format_id)
    for _ in range(40):
        data = mutate(original, rng)
        for chosen in ("auto", format_id):
            try:
                statement = parse_statement(data, chosen)
            except StatementError as error:
                assert str(error)
            else:
                assert statement.movements
