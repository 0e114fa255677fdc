"""Issue 21 item 3: statements within a budget. Every file of the hostile corpus
(tests/hostile_statements.py: the 1.6 KB `A1:XFD1048576` sheet, its variants, XML and zip bombs,
huge and malformed files) answers a 4xx quickly on both databases, and the web process's memory
stays flat: the parse runs in a child process with a memory and a time budget, the sheet's extent
is checked before the reader allocates, and POST /api/statements is rate-limited per key.
"""
import io
import time

import pytest

from reconciliation.containers import MAX_SHEET_ROWS
from reconciliation.sandbox import StatementTooComplex, parse_in_child
from tests.hostile_statements import CORPUS, SHEET_OPEN, write_xlsx
from tests.test_corrections import finished
from tests.test_tenants import ADMIN_KEY, keyed

REFUSALS = {"statement_unreadable", "statement_format_unknown", "statement_format_ambiguous", "statement_too_complex"}
MAX_SECONDS = 20
# The web process may grow by this much over the whole corpus (it parses nothing itself).
MAX_RSS_GROWTH_MB = 120


def peak_rss_mb() -> float:
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def post(client, data, format_id="auto", key=ADMIN_KEY):
    return client.post("/api/statements", headers=keyed(key), content_type="multipart/form-data",
                       data={"format": format_id, "file": (io.BytesIO(data), "extracto.xlsx")})


def test_the_hostile_corpus_is_refused_quickly_with_the_web_process_memory_flat(make_app, capsys):
    app = make_app(API_KEYS=[ADMIN_KEY])
    client = app.test_client()
    before = peak_rss_mb()
    timings = {}
    for name, build in CORPUS.items():
        data = build()
        for format_id in ("auto", "bdv_online_xlsx"):
            started = time.monotonic()
            answer = post(client, data, format_id)
            timings[f"{name}/{format_id}"] = round(time.monotonic() - started, 2)
            assert answer.status_code in (400, 413), (name, format_id, answer.status_code, answer.get_data()[:300])
            assert answer.get_json()["error"]["code"] in REFUSALS | {"statement_too_large"}, (name, answer.get_json())
            assert timings[f"{name}/{format_id}"] < MAX_SECONDS, (name, format_id)
        del data
    peak = peak_rss_mb()
    with capsys.disabled():
        print(f"\nhostile statements: web process peak RSS {before:.0f} MB before, {peak:.0f} MB after; "
              f"slowest {max(timings.items(), key=lambda item: item[1])}")
    assert peak - before < MAX_RSS_GROWTH_MB
    # The sheets the finding named are refused by the extent check, naming the extent.
    message = post(client, CORPUS["xfd_corner"](), "bdv_online_xlsx")
    assert "1048576 filas por 16384 columnas" in message.get_json()["error"]["message"]
    # And a real statement still goes through after all that.
    assert client.get("/api/health/live").status_code == 200


def _big_but_allowed_sheet() -> bytes:
    """Within the extent limits (200k rows x 20 columns), but far more than 256 MB once read."""
    row_cells = "".join(f"<c><v>{n}</v></c>" for n in range(20))

    def chunks():
        yield SHEET_OPEN + "<sheetData>"
        for _ in range(MAX_SHEET_ROWS // 1000):
            yield f"<row>{row_cells}</row>" * 1000
        yield "</sheetData></worksheet>"
    return write_xlsx(chunks())


def test_a_parse_past_its_memory_budget_ends_its_child_not_the_web_process(tmp_path):
    started = time.monotonic()
    with pytest.raises(StatementTooComplex, match="MB de memoria|terminó"):
        parse_in_child(_big_but_allowed_sheet(), "bdv_online_xlsx", None, memory_mb=256, timeout_seconds=120)
    assert time.monotonic() - started < 90


def test_a_parse_past_its_time_budget_is_killed():
    started = time.monotonic()
    with pytest.raises(StatementTooComplex, match="más de 0.5 s"):
        parse_in_child(_big_but_allowed_sheet(), "bdv_online_xlsx", None, memory_mb=4096, timeout_seconds=0.5)
    assert time.monotonic() - started < 10


def test_statement_uploads_are_rate_limited_per_key(make_app):
    from service.access import create_key

    app = make_app(API_KEYS=[ADMIN_KEY], STATEMENT_RATE_LIMIT_PER_MINUTE=3)
    rt = app.extensions["ocr_runtime"]
    other, _ = create_key(rt.db, "other")
    client = app.test_client()
    garbage = CORPUS["random_bytes"]()[:1000]
    # Fixed windows of a minute: seven requests in a few seconds span at most two, so one is refused.
    answers = [post(client, garbage) for _ in range(7)]
    assert {answer.status_code for answer in answers} == {400, 429}
    answer = next(answer for answer in answers if answer.status_code == 429)
    assert answer.get_json()["error"]["code"] == "rate_limited" and int(answer.headers["Retry-After"]) >= 1
    assert post(client, garbage, key=other).status_code == 400  # another key has its own budget


def test_exports_are_limited_per_key_while_streams_are_open(make_app):
    from service.access import create_key

    app = make_app(API_KEYS=[ADMIN_KEY], EXPORT_CONCURRENCY_PER_KEY=1)
    rt = app.extensions["ocr_runtime"]
    other, _ = create_key(rt.db, "other")
    for n in range(2):  # rows to stream: an empty export ends (and frees its slot) at once
        finished(rt, f"s{n}.png", ref=f"40562241{n:04d}")
    client = app.test_client()
    held = client.get("/api/extract_results/export", headers=keyed(ADMIN_KEY), buffered=False)
    assert held.status_code == 200
    refused = client.get("/api/extract_results?format=csv", headers=keyed(ADMIN_KEY))
    assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "too_many_concurrent"
    assert refused.headers["Retry-After"]
    assert client.get("/api/extract_results/export", headers=keyed(other)).status_code == 200
    held.close()
    assert client.get("/api/extract_results?format=csv", headers=keyed(ADMIN_KEY)).status_code == 200
