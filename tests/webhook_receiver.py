"""A webhook receiver for tests: a threaded http.server on 127.0.0.1 that checks every signature
the way README tells receivers to, records what arrives, and can answer errors, hang, or go down."""
from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify(secret: str, header: str, body: bytes, tolerance: float = 300) -> bool:
    """README's snippet: t and v1 from X-Signature, HMAC-SHA256 over "<t>.<body>", a recent t."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    expected = hmac.new(secret.encode(), f"{parts.get('t', '')}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", "")) and abs(time.time() - int(parts.get("t", 0))) < tolerance


class Receiver:
    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret
        self.mode = "ok"  # ok | error (records, answers 500) | hang (never answers in time)
        self.received: list[dict] = []  # every request: id, header id, body, signature valid
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.server: ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/ocr"

    def start(self, tls: tuple[str, str] | None = None) -> "Receiver":
        """Listening (again, on the same port once it had one); `tls`: (certificate, key) files for HTTPS."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.mode == "hang":
                    receiver.release.wait(60)
                    return
                event = json.loads(body)
                valid = receiver.secret is not None and verify(receiver.secret, self.headers.get("X-Signature", ""), body)
                with receiver.lock:
                    receiver.received.append({"id": event["id"], "header_id": self.headers.get("X-Webhook-Id"),
                                              "host": self.headers.get("Host"),
                                              "event": event, "body": body, "valid": valid, "mode": receiver.mode})
                status = 200 if receiver.mode == "ok" and valid else 500 if receiver.mode == "error" else 401
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.release.clear()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: the port refuses connections until start() again."""
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def accepted_ids(self) -> set[str]:
        with self.lock:
            return {r["id"] for r in self.received if r["valid"] and r["mode"] == "ok"}

    def requests_by_id(self) -> dict[str, list[dict]]:
        with self.lock:
            grouped: dict[str, list[dict]] = {}
            for entry in self.received:
                grouped.setdefault(entry["id"], []).append(entry)
            return grouped
