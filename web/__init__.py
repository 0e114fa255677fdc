"""The review desk at /review: server-rendered pages (Jinja) with a little plain JavaScript.

The pages hold no logic of their own: every list, correction and decision is a call to the same
/api endpoints clients use, authenticated by the session cookie the sign-in form hands out
(api/browser_session.py). Scripts and styles live in web/static; nothing comes from elsewhere,
which the pages' Content-Security-Policy enforces.
"""
from __future__ import annotations

from web.views import blueprint

PREFIX = "/review"
# The pages' own scripts, styles and images (blob: for nothing, data: for none): only this origin.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                           "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


def is_page(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def is_private(path: str) -> bool:
    """Pages show receipts: never stored by a browser or proxy cache (static files may be)."""
    return is_page(path) and not path.startswith(PREFIX + "/static/")


__all__ = ["CONTENT_SECURITY_POLICY", "PREFIX", "blueprint", "is_page", "is_private"]
