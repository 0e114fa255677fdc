"""Hostile-input fuzzing of the real service under gunicorn, over loopback.

More than a thousand generated requests (seeded, so every run sends the same bytes) go to the
running service: mutated and malicious images, truncated and oversized bodies, wrong content
types, broken multipart, odd and huge metadata, path traversal in every path parameter and query
argument, random JSON to process_batch and clean, wrong methods, and a handful of malformed HTTP
messages. Then:

* no answer is a 5xx (a 503 would only be acceptable with the database down, which it is not);
* every error the application answers is `{"success": false, "error": {"code", "message"}}` JSON
  (HTTP-level garbage that gunicorn itself refuses before the app sees it is counted apart);
* nothing is ever served from outside the database (no /etc/passwd, no source file);
* the service keeps answering: health is OK, the same OCR worker process is alive, every accepted
  upload ends processed or failed, and a real receipt still goes through end to end;
* nothing outside the service's STORAGE_ROOT changed: the service runs from a private copy of the
  project whose every file is snapshotted, canary files sit next to the storage root and in /tmp,
  and no new file anywhere around carries the fuzz marker in its name.
"""
from __future__ import annotations

import gzip
import http.client
import io
import json
import os
import random
import re
import shutil
import socket
import struct
import time
import uuid
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from PIL import Image

from benchmarks.service_process import ROOT, running_service
from tools.receipt_generator import generate_receipt

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SEED = 20250711
MARKER = "fzmk"  # in many generated names and values; no file named with it may appear anywhere outside storage
MIN_REQUESTS = 1000
CLIENT_THREADS = 4
REQUEST_TIMEOUT = 120
# Limits lowered for the run so oversized bodies stay cheap in memory.
MAX_REQUEST_MB = 2
MAX_FILE_MB = 1
MAX_PIXELS = 12_000_000
COPY_IGNORE = shutil.ignore_patterns(".venv", ".git", "__pycache__", ".pytest_cache", "data", "temp", "uploads",
                                     "*.log", "*.pyc", "node_modules")
SECRET_MARKERS = (b"root:x:0:0", b"def load_settings", b"OCR_PROFILES", b"BEGIN PRIVATE KEY", MARKER.encode() + b"-canary")
ENDPOINTS = {
    "/api/upload": "POST", "/api/ocr/process_batch": "POST", "/api/clean": "POST",
    "/api/files/pending": "GET", "/api/files/processed": "GET", "/api/status": "GET", "/api/health": "GET",
    "/api/metrics": "GET", "/api/metrics/batch": "GET", "/api/config": "GET", "/api/config/extraction_rules": "GET",
    "/api/extract_results": "GET", "/metrics": "GET",
    "/api/ocr/result/BATCH_20250711_143052_a8f": "GET", "/api/ocr/result_data/x.png": "GET",
}


# --- the requests ---------------------------------------------------------------------------
@dataclass
class Case:
    category: str
    method: str = "GET"
    path: str = "/api/health"
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    raw: bytes | None = None  # a whole HTTP message sent over a plain socket
    shutdown_write: bool = False  # half-close after sending: the body the headers announce never comes
    expect: tuple[int, ...] | None = None  # when set, the status must be one of these
    protocol: bool = False  # malformed HTTP: gunicorn itself may answer (not JSON) or close


@dataclass
class Outcome:
    status: int | None
    headers: dict[str, str]
    body: bytes
    error: str | None = None


def multipart(parts: list[tuple], boundary: str = "fuzzboundary7MA4YWxkTrZu0gW") -> tuple[bytes, str]:
    """parts: (name, value) for fields, (name, filename, content_type, data) for files; raw bytes allowed."""
    out = io.BytesIO()
    b = boundary.encode("latin-1", "replace")
    for part in parts:
        out.write(b"--" + b + b"\r\n")
        if len(part) == 2:
            name, value = part
            out.write(b'Content-Disposition: form-data; name="' + _b(name) + b'"\r\n\r\n' + _b(value) + b"\r\n")
        else:
            name, filename, content_type, data = part
            out.write(b'Content-Disposition: form-data; name="' + _b(name) + b'"; filename="' + _b(filename) + b'"\r\n')
            if content_type is not None:
                out.write(b"Content-Type: " + _b(content_type) + b"\r\n")
            out.write(b"\r\n" + data + b"\r\n")
    out.write(b"--" + b + b"--\r\n")
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def _b(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_with_size(width: int, height: int, idat: bytes | None = None) -> bytes:
    """A PNG that declares any size; its IDAT is a tiny deflate stream unless given."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", idat if idat is not None else zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))


def png_bomb(side: int) -> bytes:
    """A real, fully valid grey PNG of side x side zeros: a few KB that inflate to side² bytes."""
    row = b"\x00" * (side + 1)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return png_with_size(side, side, idat)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def base_images() -> dict[str, bytes]:
    images = {
        "receipt_png": generate_receipt(31, variant="clean").image_bytes,
        "receipt_jpg": generate_receipt(32, variant="whatsapp").image_bytes,
        "receipt_lowres": generate_receipt(33, variant="lowres").image_bytes,
    }
    small = Image.new("RGB", (64, 48), (250, 250, 250))
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"):
        images[f"small_{fmt.lower()}"] = encode(small, fmt)
    images["small_rgba_png"] = encode(Image.new("RGBA", (40, 40), (0, 0, 0, 0)), "PNG")
    images["small_16bit_png"] = encode(Image.new("I;16", (40, 40), 300), "PNG")
    images["tiny_1x1_png"] = encode(Image.new("L", (1, 1), 0), "PNG")
    images["animated_gif"] = encode(small.convert("P"), "GIF", save_all=True,
                                    append_images=[Image.new("P", (64, 48), 3)] * 3)
    return images


def declared_huge(rng: random.Random) -> bytes:
    """Headers that claim enormous dimensions in each allowed format (a few bytes of pixels)."""
    side = rng.choice((30000, 65535, 100000, 2 ** 31 - 1))
    kind = rng.choice(("png", "gif", "bmp", "jpeg", "tiff", "webp"))
    if kind == "png":
        return png_with_size(side, rng.choice((side, 1)))
    if kind == "gif":
        w = min(side, 65535)
        return b"GIF89a" + struct.pack("<HH", w, w) + b"\x00\x00\x00" + b",\x00\x00\x00\x00" + struct.pack("<HH", w, w) \
            + b"\x00\x02\x02\x44\x01\x00;"
    if kind == "bmp":
        w = min(side, 2 ** 31 - 1)
        header = struct.pack("<IiiHHIIiiII", 40, w, w, 1, 24, 0, 0, 2835, 2835, 0, 0)
        return b"BM" + struct.pack("<IHHI", 14 + 40 + 16, 0, 0, 54) + header + b"\x00" * 16
    if kind == "jpeg":
        h = w = min(side, 65535)
        sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, h, w, 1) + b"\x01\x11\x00"
        return b"\xff\xd8" + sof + b"\xff\xd9"
    if kind == "tiff":
        w = min(side, 2 ** 31 - 1)
        entries = [(256, 4, 1, w), (257, 4, 1, w), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
                   (273, 4, 1, 8), (277, 3, 1, 1), (279, 4, 1, 16)]
        ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\x00" * 4
        return b"II*\x00" + struct.pack("<I", 24) + b"\x00" * 16 + ifd
    w = min(side, 2 ** 24) - 1  # VP8X stores width-1 and height-1 in 24 bits each
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + w.to_bytes(3, "little") + w.to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


def mutate(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    choice = rng.randrange(8)
    if choice == 0:  # bit flips anywhere
        out = bytearray(data)
        for _ in range(rng.randint(1, 64)):
            position = rng.randrange(len(out))
            out[position] ^= 1 << rng.randrange(8)
        return "bitflip", bytes(out)
    if choice == 1:  # bit flips in the header, where the parsers look first
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            position = rng.randrange(min(len(out), 96))
            out[position] ^= 1 << rng.randrange(8)
        return "headerflip", bytes(out)
    if choice == 2:
        return "truncated", data[:rng.randrange(0, len(data))]
    if choice == 3:  # another format's magic in front of the body
        magic = rng.choice((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
                            b"RIFF\x00\x00\x00\x00WEBP", b"%PDF-1.7\n", b"PK\x03\x04", b"\x7fELF", b"<?xml",
                            b"\x00\x00\x01\x00", b"8BPS", b"\x00" * 8))
        return "wrongmagic", magic + data[len(magic):]
    if choice == 4:
        return "declared_huge", declared_huge(rng)
    if choice == 5:  # chunks shuffled or repeated
        cut = sorted(rng.sample(range(1, len(data)), 2)) if len(data) > 3 else [1, 2]
        return "spliced", data[:cut[0]] + data[cut[1]:] + data[cut[0]:cut[1]] * rng.randint(1, 3)
    if choice == 6:  # random garbage of the right magic
        return "garbage_tail", data[:16] + rng.randbytes(rng.randint(0, 4096))
    return "zero_filled", data[:rng.randint(8, 64)] + b"\x00" * rng.randint(0, 20000)


def polyglots(images: dict[str, bytes]) -> list[tuple[str, str, bytes]]:
    png, jpg, gif = images["small_png"], images["small_jpeg"], images["small_gif"]
    script = b"<script>alert(document.cookie)</script><?php system($_GET['c']); ?>"
    zip_tail = b"PK\x03\x04" + b"\x00" * 26 + b"evil.sh" + b"#!/bin/sh\nrm -rf /\n" + b"PK\x05\x06" + b"\x00" * 18
    return [
        ("png+html", "x.png", png + script),
        ("png+zip", "x.png", png + zip_tail),
        ("jpeg+php_comment", "x.jpg", jpg[:2] + b"\xff\xfe" + struct.pack(">H", len(script) + 2) + script + jpg[2:]),
        ("gif+js", "x.gif", b"GIF89a/*" + gif[8:] + b"*/=1;alert(1);"),
        ("html_as_png", "x.png", b"<!DOCTYPE html><html><body>" + script + b"</body></html>"),
        ("svg_as_png", "x.png", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
                                b'<image href="file:///etc/passwd"/></svg>'),
        ("pdf_as_jpg", "x.jpg", b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF"),
        ("elf_as_png", "x.png", b"\x7fELF\x02\x01\x01" + b"\x00" * 120),
        ("zip_as_jpg", "x.jpg", zip_tail),
        ("png_text_chunk_xss", "x.png", png[:33] + png_chunk(b"tEXt", b"Comment\x00" + script) + png[33:]),
        ("png_huge_text_chunk", "x.png", png[:33] + png_chunk(b"zTXt", b"k\x00\x00" + zlib.compress(b"A" * 5_000_000)) + png[33:]),
        ("png_bad_crc", "x.png", png[:29] + b"\x00\x00\x00\x00" + png[33:]),
        ("empty", "x.png", b""),
        ("ico", "x.ico", encode(Image.new("RGB", (32, 32)), "ICO")),
        ("tga", "x.png", encode(Image.new("RGB", (32, 32)), "TGA")),
        ("psd_magic", "x.png", b"8BPS\x00\x01" + b"\x00" * 64),
        ("exif_bomb_jpeg", "x.jpg", jpg[:2] + b"\xff\xe1\xff\xfeExif\x00\x00" + b"MM\x00*\x00\x00\x00\x08" + b"\xff" * 65520 + jpg[2:]),
    ]


HOSTILE_STRINGS = [
    "", " ", "\x00", "a\x00b", "\r\n", "\r\nX-Injected: 1", "\t\t", "\x1b[31mred", "\x7f", "\u0085", "\u2028",
    "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "javascript:alert(1)",
    "' OR '1'='1", "1; DROP TABLE uploads;--", "\" OR 1=1 --", "admin'--", "1 UNION SELECT * FROM results",
    "../../etc/passwd", "..\\..\\windows\\win.ini", "/etc/passwd", "....//....//etc/passwd", "%2e%2e%2f%2e%2e%2f",
    "..%2F..%2Fconfig.py", "file:///etc/passwd", "C:\\boot.ini", "\\\\server\\share", ".", "..", "...", ".hidden",
    "%s%s%s%n", "{0}{1}", "${jndi:ldap://127.0.0.1/a}", "{{7*7}}", "$(id)", "`id`", "|id", ";id",
    "José Ñandú", "Müller-Ömer", "李小龙", "محمد", "שלום", "😀😀😀", "\u202egnp.exe", "\u200b\u200c\u200d", "e\u0301",
    "Ａｄｍｉｎ", "𝕏𝕪𝕫", "\ud800", "\udfff", "ß" * 200, "A" * 121, "A" * 10_240, "9" * 10_240, "🙂" * 3000,
    "20250711", "99999999", "00000000", "20251345", "2025071", "-1", "1e309", "NaN", "null", "true", "[]", "{}",
    "123456@lid", "123456@" + "a" * 41, "@", "a@b@c", "14-30", "24-00", "23-60", "1-1", f"{MARKER}name",
]


def metadata_case(rng: random.Random, image: bytes) -> Case:
    fields = ["numerosorteo", "fechasorteo", "idWhatsapp", "nombre", "horamin"]
    parts: list[tuple] = []
    for name in fields:
        if rng.random() < 0.6:
            value = rng.choice(HOSTILE_STRINGS) if rng.random() < 0.7 else rng.choice(
                ["A", "20250711", f"{rng.randint(1, 10 ** 9)}@lid", f"{MARKER} Juan", "14-30"])
            parts.append((name, value))
    if rng.random() < 0.15:  # a field name that is itself hostile, or a field sent twice
        parts.append((rng.choice(["../../x", "nombre\x00", "<b>", "nombre", "files"]), rng.choice(HOSTILE_STRINGS)))
    if rng.random() < 0.1:  # invalid UTF-8 in a value
        parts.append((rng.choice(fields), b"\xff\xfe\xc0\xaf"))
    filename = rng.choice([f"{MARKER}.png", "../../../../tmp/" + MARKER + ".png", "..\\..\\" + MARKER + ".png",
                           "/etc/passwd", "a\x00b.png", MARKER + "\u202egnp.exe", "x" * 300 + ".png", ".htaccess",
                           "con.png", "", " ", MARKER + "<script>.png", "%2e%2e%2f" + MARKER + ".png"])
    parts.append(("files", filename or f"{MARKER}.png", "image/png", image))
    rng.shuffle(parts)
    body, content_type = multipart(parts)
    return Case("metadata", "POST", "/api/upload", [("Content-Type", content_type)], body)


def image_cases(rng: random.Random, images: dict[str, bytes], count: int) -> list[Case]:
    cases = []
    names = sorted(images)
    for _ in range(count):
        kind, data = mutate(rng, images[rng.choice(names)])
        filename = rng.choice([f"{MARKER}_{kind}.png", f"{MARKER}.jpg", f"../../{MARKER}.gif", f"{MARKER}.exe"])
        content_type = rng.choice(["image/png", "image/jpeg", "application/octet-stream", "text/html", None])
        meta = [("nombre", f"{MARKER} {rng.randrange(50)}"), ("horamin", f"{rng.randrange(24):02d}-{rng.randrange(60):02d}")]
        body, ctype = multipart(meta + [("files", filename, content_type, data)])
        cases.append(Case(f"image:{kind}", "POST", "/api/upload", [("Content-Type", ctype)], body))
    for label, filename, data in polyglots(images):
        body, ctype = multipart([("nombre", f"{MARKER} poly"), ("files", f"{MARKER}_{filename}", "image/png", data)])
        cases.append(Case(f"image:polyglot:{label}", "POST", "/api/upload", [("Content-Type", ctype)], body))
    # Decompression bombs: declared beyond the limit (refused from the header), and real ones.
    for side in (3000, 5000, 20000, 60000):  # 3000² is under MAX_PIXELS: accepted, and the OCR worker must cope
        body, ctype = multipart([("nombre", f"{MARKER} bomb"), ("files", f"{MARKER}_bomb.png", "image/png", png_bomb(side))])
        expect = (200,) if side * side <= MAX_PIXELS else (413,)
        cases.append(Case("image:bomb", "POST", "/api/upload", [("Content-Type", ctype)], body, expect=expect))
    # A request with more files than allowed, and one with a valid file next to a broken one.
    many, ctype = multipart([("files", f"{MARKER}{i}.png", "image/png", images["small_png"]) for i in range(51)])
    cases.append(Case("image:too_many_files", "POST", "/api/upload", [("Content-Type", ctype)], many, expect=(429,)))
    mixed, ctype = multipart([("files", f"{MARKER}ok.png", "image/png", images["small_bmp"]),
                              ("files", f"{MARKER}bad.png", "image/png", b"\x89PNG\r\n\x1a\nnope")])
    cases.append(Case("image:mixed_batch", "POST", "/api/upload", [("Content-Type", ctype)], mixed, expect=(400,)))
    return cases


def body_cases(rng: random.Random, images: dict[str, bytes]) -> list[Case]:
    cases = []
    over = MAX_REQUEST_MB * 1024 * 1024 + 1024
    for i in range(6):  # oversized: request bigger than MAX_REQUEST_SIZE_MB, announced by Content-Length
        body, ctype = multipart([("files", f"{MARKER}big{i}.png", "image/png", images["small_png"] + rng.randbytes(over))])
        cases.append(Case("body:oversized", "POST", "/api/upload", [("Content-Type", ctype)], body, expect=(413,)))
    for i in range(4):  # a file above MAX_FILE_SIZE_MB inside a request below the request limit
        data = images["small_png"] + b"\x00" * (MAX_FILE_MB * 1024 * 1024 + 10)
        body, ctype = multipart([("files", f"{MARKER}file{i}.png", "image/png", data)])
        cases.append(Case("body:file_too_large", "POST", "/api/upload", [("Content-Type", ctype)], body, expect=(413,)))
    for i in range(4):  # oversized, chunked: no Content-Length to refuse early
        body, ctype = multipart([("files", f"{MARKER}chunk{i}.png", "image/png", rng.randbytes(over))])
        chunked = b"".join(b"%x\r\n" % len(body[s:s + 65536]) + body[s:s + 65536] + b"\r\n"
                           for s in range(0, len(body), 65536)) + b"0\r\n\r\n"
        raw = (b"POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n"
               b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + chunked)
        cases.append(Case("body:oversized_chunked", raw=raw, expect=(413,)))
    for path in ("/api/upload", "/api/ocr/process_batch", "/api/clean"):  # absurd Content-Length, tiny body
        for length in (10 ** 10, 2 ** 63 - 1, over):
            raw = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                   f"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: {length}\r\n\r\n").encode() + b"--xyz\r\n"
            cases.append(Case("body:huge_content_length", raw=raw, shutdown_write=True, expect=(413,)))
    for i in range(30):  # truncated: the announced body never fully arrives
        body, ctype = multipart([("nombre", f"{MARKER} t"), ("files", f"{MARKER}trunc{i}.png", "image/png", images["receipt_lowres"])])
        cut = rng.randrange(1, len(body))
        path = rng.choice(("/api/upload", "/api/upload", "/api/ocr/process_batch", "/api/clean"))
        if path != "/api/upload":
            body, ctype = b'{"profile": "ultra_rapido", "retention_hours": 24, "pad": "' + b"x" * 4000 + b'"}', "application/json"
            cut = rng.randrange(1, len(body))
        raw = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: {ctype}\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:cut]
        cases.append(Case("body:truncated", raw=raw, shutdown_write=True))
    # Too many form parts and a form field above the in-memory form limit.
    parts, ctype = multipart([(f"f{i}", "x") for i in range(1100)] + [("files", f"{MARKER}p.png", "image/png", images["small_png"])])
    cases.append(Case("body:too_many_parts", "POST", "/api/upload", [("Content-Type", ctype)], parts, expect=(413,)))
    big_field, ctype = multipart([("nombre", "A" * 700_000), ("files", f"{MARKER}p.png", "image/png", images["small_png"])])
    cases.append(Case("body:huge_form_field", "POST", "/api/upload", [("Content-Type", ctype)], big_field, expect=(400, 413)))
    gz = gzip.compress(b"\x00" * 5_000_000)
    cases.append(Case("body:gzip_encoded", "POST", "/api/upload",
                      [("Content-Type", "multipart/form-data; boundary=a"), ("Content-Encoding", "gzip")], gz))
    cases.append(Case("body:gzip_encoded", "POST", "/api/ocr/process_batch",
                      [("Content-Type", "application/json"), ("Content-Encoding", "gzip")], gzip.compress(b'{"async": true}')))
    return cases


def content_type_cases(rng: random.Random, images: dict[str, bytes], count: int) -> list[Case]:
    good, good_type = multipart([("files", f"{MARKER}.png", "image/png", images["small_png"])], boundary="B0undary")
    variants = [
        "multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=wrong",
        "multipart/form-data; boundary=\"B0undary", "multipart/form-data; boundary=" + "B" * 5000,
        "multipart/form-data; boundary=B0undary; boundary=other", "multipart/mixed; boundary=B0undary",
        "multipart/form-data; boundary=\x00", "multipart/form-data;;;", "multipart/form-data; charset=utf-7; boundary=B0undary",
        "text/plain", "application/json", "application/x-www-form-urlencoded", "image/png", "application/octet-stream",
        "", "*/*", "multipart/form-data; boundary=B0undary\r\nX-Evil: 1", "MULTIPART/FORM-DATA; BOUNDARY=B0undary",
        "application/xml", "text/html; charset=\u00ff", good_type,
    ]
    bodies = [good, good[: len(good) // 2], good.replace(b"--B0undary--", b""), b"", b"files=%2e%2e%2f&nombre=x",
              json.dumps({"files": ["../../etc/passwd"]}).encode(), images["small_png"], b"--B0undary\r\n\r\n--B0undary--",
              b"--B0undary\r\nContent-Disposition: form-data\r\n\r\nx\r\n--B0undary--\r\n",
              b"--B0undary\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.png\"\r\n"
              b"Content-Type: multipart/mixed; boundary=inner\r\n\r\n--inner\r\n\r\nx\r\n--inner--\r\n--B0undary--\r\n",
              b"--B0undary\r\nContent-Disposition: form-data; name=\"files\"; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd\r\n\r\n"
              + images["small_png"] + b"\r\n--B0undary--\r\n"]
    cases = []
    for _ in range(count):
        content_type = rng.choice(variants)
        headers = [("Content-Type", content_type)] if content_type else []
        path = rng.choice(("/api/upload", "/api/upload", "/api/upload", "/api/ocr/process_batch", "/api/clean"))
        method = "POST"
        cases.append(Case("content_type", method, path, headers, rng.choice(bodies)))
    return cases


TRAVERSALS = [
    "..%2F..%2Fetc%2Fpasswd", "..%2f..%2fconfig.py", "..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fconfig.py",
    "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "..%252f..%252fconfig.py", "%252e%252e%252fconfig.py", "..%5c..%5cconfig.py",
    "..%5C..%5C..%5Cetc%5Cpasswd", "%c0%ae%c0%ae%c0%afconfig.py", "%c0%ae%c0%ae/config.py", "..%c0%af..%c0%afetc%c0%afpasswd",
    "..%c1%9c..%c1%9cconfig.py", "%uff0e%uff0e%u2215config.py", "%EF%BC%8E%EF%BC%8E%EF%BC%8Fconfig.py",
    "..;%2f..;%2fconfig.py", "..%00%2fconfig.py", "config.py%00.png", "%00", "..", ".", "...", "....%2f%2f....%2f%2fconfig.py",
    "%2Fetc%2Fpasswd", "%2F%2Fetc%2Fpasswd", "file:%2F%2F%2Fetc%2Fpasswd", "..%2F..%2Fdata%2Focr.db", "..%2Focr.db",
    "..%2F..%2Fmain.py", "..%2Fresults%2F..%2F..%2F..%2Fconfig.py", "%2e%2e", "%2e", ".%2e%2f.%2e%2fconfig.py",
    "..%2F" * 12 + "etc%2Fpasswd", "BATCH_20250711_143052_a8f%2F..%2F..%2Fconfig.py", "BATCH_20250711_143052_a8f%00",
    "BATCH_20250711_143052_a8f%0a", "BATCH_20250711_143052_a8f..", "ocr.db", "ocr.db-journal", ".%2Focr.db",
    "..%2F..%2F" + MARKER + "-canary.txt", "..%2F..%2F..%2F" + MARKER + "-canary.txt",
]


def traversal_cases(rng: random.Random, canary_abs: str) -> list[Case]:
    expect = (400, 404, 405, 308)
    cases = []
    extra = [quote(canary_abs, safe=""), ".." + quote(canary_abs, safe=""), quote("../" * 8 + canary_abs.lstrip("/"), safe="")]
    for payload in TRAVERSALS + extra:
        cases.append(Case("traversal:result", "GET", f"/api/ocr/result/{payload}", expect=expect))
        cases.append(Case("traversal:result_data", "GET", f"/api/ocr/result_data/{payload}", expect=expect))
    for payload in rng.sample(TRAVERSALS, 12):
        cases.append(Case("traversal:query", "GET", f"/api/extract_results?request_id={payload}", expect=(400,)))
        cases.append(Case("traversal:query", "GET", f"/api/extract_results?since={payload}", expect=(400,)))
        cases.append(Case("traversal:query", "GET", f"/api/metrics?format={payload}", expect=(400,)))
        cases.append(Case("traversal:query", "GET", f"/api/files/processed?limit={payload}", expect=(400,)))
    # Traversal in the route itself, unencoded (http.client sends it verbatim: no client-side normalization).
    for raw_path in ("/api/ocr/result_data/../../config.py", "/api/ocr/result/../../../etc/passwd", "/api/../config.py",
                     "/../../../../etc/passwd", "/api/ocr/result_data/..%2f..%2fconfig.py/", "//etc/passwd",
                     "/api//ocr//result_data//x", "/api/ocr/result_data/%2e%2e/%2e%2e/config.py", "/static/../config.py",
                     "/api/upload/../../main.py", "/api/ocr/result_data/" + "A" * 3000, "/api/ocr/result_data/..\\..\\config.py",
                     "/api/ocr/result_data/x.png?../../config.py", "/api/ocr/result_data/x.png#../../config.py",
                     "/api/%2e%2e/%2e%2e/etc/passwd", "/%2e%2e/config.py", "/api/health/../../config.py"):
        cases.append(Case("traversal:route", "GET", raw_path, expect=expect))
    return cases


def json_values(rng: random.Random, depth: int = 0):
    kind = rng.randrange(11 if depth < 3 else 8)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2 ** 63, -(2 ** 63), 10 ** 400, 87600, 87601, 24, 0.5, -0.0, 1e308])
    if kind == 3:
        return rng.random() * rng.choice([1, 1e10, -1e10])
    if kind in (4, 5, 6, 7):
        return rng.choice(HOSTILE_STRINGS + ["ultra_rapido", "balanced", "high_confidence", "spa", "eng", "ULTRA_RAPIDO"])
    if kind in (8, 9):
        return [json_values(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["profile", "language", "async", "x", ""]): json_values(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def json_cases(rng: random.Random, count: int) -> list[Case]:
    keys = ["profile", "language", "include_coordinates", "async", "retention_hours", "files", "request_id", "__proto__"]
    specials = [
        b"", b"   ", b"null", b"[]", b"\"string\"", b"123", b"true", b"{", b"}", b"{\"profile\":}", b"{'profile': 'x'}",
        b"\xff\xfe\x00\x00", b"\xc3\x28", b"{\"profile\": \"\xff\xfe\"}", "\ufeff{}".encode(), '{"async": true}'.encode("utf-16"),
        b"{\"retention_hours\": NaN}", b"{\"retention_hours\": Infinity}", b"{\"retention_hours\": -Infinity}",
        b"{\"retention_hours\": 1e999}", b"{\"retention_hours\": " + b"9" * 5000 + b"}",
        b"{\"retention_hours\": 0." + b"0" * 5000 + b"1}", b"{\"profile\": \"ultra_rapido\", \"profile\": [1]}",
        b"[" * 100_000 + b"]" * 100_000, b"{\"a\":" * 50_000 + b"1" + b"}" * 50_000, b"[" * 5000,
        b"{\"profile\": \"" + b"\\ud800" * 100 + b"\"}", b"{\"profile\": \"\\u0000\"}", b"{\"language\": [\"spa\"]}",
        b"{\"language\": {\"spa\": 1}}", b"{\"async\": \"true\"}", b"{\"async\": 1}", b"{\"include_coordinates\": null}",
        b"{\"retention_hours\": true}", b"{\"retention_hours\": \"24\"}", b"{\"retention_hours\": -1}",
        b"{\"retention_hours\": [24]}", b"{\"profile\": {\"$ne\": null}}", json.dumps({"x": "A" * 1_500_000}).encode(),
        b"\x00" * 100, gzip.compress(b"{}"), b"profile=ultra_rapido&async=true",
    ]
    cases = []
    for body in specials:
        for path in ("/api/ocr/process_batch", "/api/clean"):
            cases.append(Case("json:special", "POST", path, [("Content-Type", "application/json")], body))
    while len(cases) < count:
        if rng.random() < 0.75:
            value = {rng.choice(keys): json_values(rng) for _ in range(rng.randint(0, 4))}
        else:
            value = json_values(rng)
        body = json.dumps(value, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
        path = rng.choice(("/api/ocr/process_batch", "/api/clean"))
        content_type = rng.choice(["application/json", "application/json", "text/plain", "application/x-www-form-urlencoded", ""])
        headers = [("Content-Type", content_type)] if content_type else []
        cases.append(Case("json:random", "POST", path, headers, body))
    return cases


def method_cases() -> list[Case]:
    cases = []
    for path, allowed in ENDPOINTS.items():
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "TRACE", "HEAD", "OPTIONS", "CONNECT", "PROPFIND", "FOO"):
            if method == allowed:
                continue
            body = b"{}" if method in ("POST", "PUT", "PATCH") else None
            headers = [("Content-Type", "application/json")] if body else []
            if method == "OPTIONS":
                headers.append(("Origin", "http://evil.example"))
                headers.append(("Access-Control-Request-Method", "DELETE"))
            cases.append(Case("method", method, path, headers, body))
    return cases


def misc_cases(rng: random.Random) -> list[Case]:
    cases = [Case("misc", "GET", path) for path in ("/", "/api", "/api/", "/api/nonexistent", "/favicon.ico",
                                                      "/api/ocr/result/", "/api/ocr/result_data/", "/api/metrics?format=xml",
                                                      "/api/files/pending?limit=0", "/api/files/pending?limit=99999999999999999999",
                                                      "/api/extract_results?since=2025-13-45", "/api/extract_results?since=9999-12-31&until=0001-01-01",
                                                      "/api/extract_results?limit=-5", "/api/extract_results?request_id=",
                                                      "/api/extract_results?since=2025-07-11T00:00:00%2B99:00",
                                                      "/.env", "/.git/config", "/api/files/pending?limit=%00")]
    # Digits that str.isdigit() or \\d accept but that are not plain ASCII digits, oversized numbers,
    # and dates whose conversion to UTC leaves the calendar.
    # (4,000 digits: gunicorn refuses request lines above 4,094 bytes before the app sees them.)
    for query in ("limit=%C2%B2", "limit=%D9%A3", "limit=" + "9" * 4000, "limit=1%0A", "limit=+5", "limit=5.0",
                  "request_id=BATCH_%D9%A2%D9%A0%D9%A2%D9%A5%D9%A0%D9%A7%D9%A1%D9%A1_143052_a8f",
                  "request_id=BATCH_20250711_143052_a8f%0A", "since=0001-01-01T00:00:00%2B14:00",
                  "until=9999-12-31T23:59:59-14:00", "since=0001-01-01T00:00:00%2B00:01", "since=" + "9" * 4000):
        cases.append(Case("misc:query", "GET", f"/api/extract_results?{query}", expect=(400,)))
        cases.append(Case("misc:query", "GET", f"/api/files/processed?{query}"))
    # Metadata in other scripts' digits: \d would take them, the stored name would silently lose them.
    tiny = encode(Image.new("RGB", (32, 32), (255, 255, 255)), "PNG")
    for field_name, value in (("fechasorteo", "٢٠٢٥٠٧١١"), ("horamin", "1٤-30"), ("fechasorteo", "２０２５０７１１"),
                              ("horamin", "14-3٠")):
        body, ctype = multipart([(field_name, value), ("files", f"{MARKER}.png", "image/png", tiny)])
        cases.append(Case("misc:digits", "POST", "/api/upload", [("Content-Type", ctype)], body, expect=(400,)))
    for name, value in (("X-Forwarded-For", "127.0.0.1, 10.0.0.1, ../../etc"), ("Host", "evil.example"),
                        ("X-API-Key", "\u00ff" * 100), ("Authorization", "Bearer " + "A" * 4000), ("Origin", "null"),
                        ("X-Forwarded-Proto", "gopher"), ("Range", "bytes=0-1"), ("Cookie", "session=" + "x" * 3000),
                        ("Accept", "text/html"), ("Accept-Encoding", "gzip, deflate, br, zstd")):
        for path in ("/api/health", "/api/config", "/api/ocr/result_data/x.png"):
            cases.append(Case("misc:header", "GET", path, [(name, value)]))
    return cases


def protocol_cases() -> list[Case]:
    messages = [
        b"GET /api/health\r\n\r\n", b"GET\r\n\r\n", b"\r\n\r\n\r\n", b"GARBAGE\x00\xff\r\n\r\n",
        b"GET /api/health HTTP/9.9\r\nHost: x\r\n\r\n", b"GET /api/health HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
        b"GET /api/health HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", b"GET /api/health HTTP/1.1\nHost: x\n\n",
        b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 20000 + b"\r\n\r\n",
        b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/health?" + b"q=" + b"%2e" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/\x00health HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /api/health HTTP/1.1\r\nHost: x\r\n folded: y\r\n\r\n",
        b"POST /api/clean HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n{}",
        b"POST /api/clean HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /api/clean HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        b"POST /api/clean HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}",
        b"POST /api/clean HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}",
        b"POST /api/clean HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"GET /api/health HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
        b"GET http://127.0.0.1/api/health HTTP/1.1\r\nHost: evil\r\n\r\n", b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/health HTTP/1.1\r\nHost: x",  # headers never end
        b"POST /api/upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n",
    ]
    return [Case("protocol", raw=m, shutdown_write=True, protocol=True) for m in messages]


def build_cases(images: dict[str, bytes], canary_abs: str) -> list[Case]:
    rng = random.Random(SEED)
    cases: list[Case] = []
    cases += image_cases(rng, images, 330)
    cases += [metadata_case(rng, images[rng.choice(["small_png", "small_bmp", "small_gif"])]) for _ in range(200)]
    cases += body_cases(rng, images)
    cases += content_type_cases(rng, images, 90)
    cases += traversal_cases(rng, canary_abs)
    cases += json_cases(rng, 210)
    cases += method_cases()
    cases += misc_cases(rng)
    cases += protocol_cases()
    # Interleave categories (deterministically) so no endpoint sees only one kind of input at a time.
    random.Random(SEED + 1).shuffle(cases)
    return cases


# --- sending --------------------------------------------------------------------------------
def send_http(port: int, case: Case) -> Outcome:
    """http.client sends the path verbatim (no dot-segment normalization, unlike requests/urllib3)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        has_host = any(name.lower() == "host" for name, _ in case.headers)
        try:
            connection.putrequest(case.method, case.path, skip_host=has_host, skip_accept_encoding=True)
            for name, value in case.headers:
                connection.putheader(name, value.encode("utf-8", "surrogatepass"))
        except ValueError:
            # http.client refuses CR/LF or control characters in headers: send those bytes raw.
            case.protocol = True  # gunicorn refuses these before the app sees them
            return send_raw(port, Case(case.category, raw=raw_message(case), protocol=True))
        if case.body is not None:
            connection.putheader("Content-Length", str(len(case.body)))
        connection.endheaders(case.body)
        response = connection.getresponse()
        return Outcome(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(None, {}, b"", f"{type(exc).__name__}: {exc}")
    finally:
        connection.close()


def raw_message(case: Case) -> bytes:
    lines = [f"{case.method} {case.path} HTTP/1.1".encode("utf-8", "surrogatepass"), b"Host: 127.0.0.1"]
    lines += [f"{name}: {value}".encode("utf-8", "surrogatepass") for name, value in case.headers]
    if case.body is not None:
        lines.append(b"Content-Length: %d" % len(case.body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + (case.body or b"")


def send_raw(port: int, case: Case) -> Outcome:
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT) as sock:
        error = None
        try:
            sock.sendall(case.raw)
            if case.shutdown_write:
                sock.shutdown(socket.SHUT_WR)
        except OSError as exc:  # the server answered and closed before taking the whole body
            error = f"send: {type(exc).__name__}"
        try:
            while chunk := sock.recv(65536):
                received += chunk
                if _complete(received):
                    break
        except OSError as exc:
            error = (error or "") + f" recv: {type(exc).__name__}"
    if not received.startswith(b"HTTP/"):
        return Outcome(None, {}, received, error or "closed without an answer")
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    if status == 100:  # Expect: 100-continue; what matters is the final answer, if any
        return Outcome(None, {}, received, "100 continue only")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return Outcome(status, headers, body, error)


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip() or 0)
    return False


def send(port: int, case: Case) -> Outcome:
    return send_raw(port, case) if case.raw is not None else send_http(port, case)


# --- filesystem watch -----------------------------------------------------------------------
def snapshot(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple[int, int]]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        current = Path(dirpath)
        dirnames[:] = [d for d in dirnames if d != "__pycache__" and current / d not in skip]
        for name in filenames:
            path = current / name
            stat = path.lstat()
            found[str(path)] = (stat.st_mtime_ns, stat.st_size)
        for name in dirnames:
            found[str(current / name) + "/"] = (0, 0)
    return found


def files_with_marker(root: Path, exclude: tuple[str, ...], max_depth: int = 4) -> list[str]:
    hits = []
    base_depth = str(root).rstrip("/").count("/")
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath.count("/") - base_depth >= max_depth:
            dirnames[:] = []
        dirnames[:] = [d for d in dirnames if d not in exclude and not os.path.join(dirpath, d).startswith(exclude)]
        hits += [os.path.join(dirpath, n) for n in filenames + dirnames if MARKER in n and "canary" not in n]
    return hits


def error_shape_problem(outcome: Outcome) -> str | None:
    try:
        body = json.loads(outcome.body)
    except ValueError:
        return f"not JSON ({outcome.headers.get('content-type')}): {outcome.body[:120]!r}"
    if not isinstance(body, dict) or body.get("success") is not False or not isinstance(body.get("error"), dict):
        return f"not an error document: {outcome.body[:200]!r}"
    error = body["error"]
    if not isinstance(error.get("code"), str) or not error["code"] or not isinstance(error.get("message"), str):
        return f"error without code/message: {outcome.body[:200]!r}"
    if not outcome.headers.get("content-type", "").startswith("application/json"):
        return f"content-type {outcome.headers.get('content-type')!r}"
    return None


def wait_queue_drained(base: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        queue = requests.get(f"{base}/api/status", timeout=10).json()["queue"]
        if (not queue["pending"] and not queue["processing"]) or time.monotonic() > deadline:
            return queue
        time.sleep(0.5)


def test_fuzz_hostile_requests(tmp_path):
    app_root = tmp_path / "app"
    storage_root = tmp_path / "storage"
    logs = tmp_path / "logs"
    logs.mkdir()
    # The service runs from a private copy of the project so that its whole tree can be watched
    # strictly while other people edit the real one.
    shutil.copytree(ROOT, app_root, ignore=COPY_IGNORE)
    canaries = {tmp_path / f"{MARKER}-canary.txt": b"canary next to the storage root\n",
                app_root / f"{MARKER}-canary.txt": b"canary in the service's project tree\n"}
    tmp_canary_dir = Path("/tmp") / f"{MARKER}-canary-{uuid.uuid4().hex[:8]}"
    tmp_canary_dir.mkdir()
    canaries[tmp_canary_dir / f"{MARKER}-canary.txt"] = b"canary in /tmp\n"
    for path, content in canaries.items():
        path.write_bytes(content)
    storage_root.mkdir()
    outside_before = snapshot(tmp_path, skip=(storage_root, logs))
    tmp_before = set(os.listdir("/tmp"))
    system_files = {p: os.stat(p).st_mtime_ns for p in ("/etc/passwd", "/etc/hosts") if os.path.exists(p)}

    images = base_images()
    cases = build_cases(images, str(tmp_canary_dir / f"{MARKER}-canary.txt"))
    assert len(cases) >= MIN_REQUESTS, len(cases)

    try:
        with running_service(storage_root, root=app_root, log_path=logs / "gunicorn.log",
                             WORKER_ENABLED="true", PROCESS_BATCH_MIN_INTERVAL_SECONDS="30",
                             MAX_REQUEST_SIZE_MB=str(MAX_REQUEST_MB), MAX_FILE_SIZE_MB=str(MAX_FILE_MB),
                             MAX_IMAGE_PIXELS=str(MAX_PIXELS), INBOX_ADOPT_MIN_AGE_SECONDS="2",
                             CLEANUP_INTERVAL_SECONDS="0", LOG_LEVEL="INFO") as svc:
            worker_pids = {p.pid for p in svc.processes() if "worker" in " ".join(p.cmdline()[-1:])}
            assert len(worker_pids) == 1, [p.cmdline() for p in svc.processes()]

            started = time.monotonic()
            with ThreadPoolExecutor(CLIENT_THREADS) as pool:
                outcomes = list(pool.map(lambda case: send(svc.port, case), cases))
            fuzz_seconds = time.monotonic() - started

            histogram: Counter = Counter()
            by_category: Counter = Counter()
            gunicorn_refused: Counter = Counter()
            failures: list[str] = []
            for case, outcome in zip(cases, outcomes):
                group = case.category.split(":")[0]
                label = outcome.status if outcome.status is not None else "no_response"
                histogram[label] += 1
                by_category[(group, label)] += 1
                where = f"{case.category} {case.method} {case.path[:100]!r}" if case.raw is None else \
                    f"{case.category} raw {case.raw[:80]!r}"
                if outcome.status is None:
                    # Only raw half-closed messages may legitimately be dropped without an answer.
                    if not (case.raw is not None and (case.shutdown_write or case.protocol)):
                        failures.append(f"{where}: no answer ({outcome.error})")
                    continue
                if outcome.status >= 500:
                    failures.append(f"{where}: {outcome.status} {outcome.body[:300]!r}")
                    continue
                if case.expect is not None and outcome.status not in case.expect:
                    failures.append(f"{where}: status {outcome.status}, expected {case.expect}: {outcome.body[:200]!r}")
                if any(marker in outcome.body for marker in SECRET_MARKERS):
                    failures.append(f"{where}: served protected content {outcome.body[:200]!r}")
                if outcome.status >= 400 and case.method != "HEAD":
                    problem = error_shape_problem(outcome)
                    # gunicorn refuses malformed HTTP before the app runs, with its own HTML page; the
                    # app marks every answer it makes with X-Content-Type-Options.
                    by_server = case.protocol or "x-content-type-options" not in outcome.headers
                    if problem and by_server:
                        histogram["gunicorn_html_error"] += 1
                        gunicorn_refused[case.category.split(":")[0]] += 1
                    elif problem:
                        failures.append(f"{where}: {outcome.status} {problem}")
                if case.category.startswith("traversal") and outcome.status == 200 and "/health" not in case.path:
                    failures.append(f"{where}: traversal answered 200: {outcome.body[:200]!r}")

            print(f"\nfuzz: {len(cases)} requests in {fuzz_seconds:.1f} s ({CLIENT_THREADS} client threads)")
            print("outcome histogram:", dict(sorted(histogram.items(), key=lambda kv: str(kv[0]))))
            groups = sorted({g for g, _ in by_category})
            for group in groups:
                row = {str(label): n for (g, label), n in sorted(by_category.items(), key=lambda kv: str(kv[0][1])) if g == group}
                print(f"  {group:14s} {sum(row.values()):5d}  {row}")
            print("refused by gunicorn itself (HTML body, before the app):", dict(gunicorn_refused))

            # The service still works: health, the same OCR worker, accepted uploads all finish,
            # and a real receipt goes through end to end.
            health = svc.health(timeout=10)
            assert health.status_code == 200 and health.json()["checks"]["worker"]["ready"], health.text
            queue = wait_queue_drained(svc.base, timeout=120)
            print("queue after the fuzz:", queue)
            assert not queue["pending"] and not queue["processing"], queue
            receipt = generate_receipt(4242, variant="whatsapp")
            answer = requests.post(f"{svc.base}/api/upload", files=[("files", ("r.jpg", receipt.image_bytes, "image/jpeg"))],
                                   data={"nombre": "Final", "horamin": "23-59"}, timeout=30)
            assert answer.status_code == 200, answer.text
            name = answer.json()["files_processed"][0]["stored_name"]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                data = requests.get(f"{svc.base}/api/ocr/result_data/{quote(name)}", timeout=10)
                if data.status_code == 200:
                    break
                time.sleep(0.3)
            assert data.status_code == 200 and data.json()["data"]["processing_status"] == "success", data.text
            after_pids = {p.pid for p in svc.processes() if "worker" in " ".join(p.cmdline()[-1:])}
            assert after_pids == worker_pids, "the OCR worker process was restarted during the fuzz"
            log = svc.log_path.read_text(errors="replace").splitlines()
            failures += [f"log: {line}" for line in log if re.search(r'HTTP/1\.[01]" 5\d\d ', line)
                         or "Unhandled error" in line or "Worker round failed" in line or "Upload not stored" in line]

        # Nothing outside STORAGE_ROOT changed: the service's copy of the project, the canaries, /tmp, /etc.
        for path, content in canaries.items():
            assert path.read_bytes() == content, f"canary {path} changed"
        outside_after = snapshot(tmp_path, skip=(storage_root, logs))
        changed = {p for p in outside_before.keys() | outside_after.keys() if outside_before.get(p) != outside_after.get(p)}
        assert not changed, f"files outside STORAGE_ROOT changed or appeared: {sorted(changed)[:20]}"
        new_in_tmp = [n for n in set(os.listdir("/tmp")) - tmp_before if MARKER in n]
        assert not new_in_tmp, new_in_tmp
        assert not files_with_marker(Path("/tmp"), exclude=(str(tmp_path), str(tmp_canary_dir), "/tmp/pytest-of-")), \
            "fuzz-named files appeared in /tmp"
        assert not files_with_marker(ROOT, exclude=(".venv", ".git", "node_modules", "data")), \
            "fuzz-named files appeared in the project tree"
        for path, mtime in system_files.items():
            assert os.stat(path).st_mtime_ns == mtime, path
        # Inside the storage root, every entry stays inside it (no symlink or name climbing out).
        for path in storage_root.rglob("*"):
            assert path.resolve().is_relative_to(storage_root.resolve()), path
            assert not path.is_symlink(), path
    finally:
        shutil.rmtree(tmp_canary_dir, ignore_errors=True)

    assert not failures, f"{len(failures)} problems:\n" + "\n".join(failures[:60])
