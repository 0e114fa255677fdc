"""Who is acting, as every correction, decision and accepted rule records it.

`acting_person()` is the one place that says it: a person signed in to the desk is their staff
account (display name and id); a machine is its API key's name (`key:<id>` without one), `admin`
for an API_KEYS key, `anonymous` for the caller of a key-less install.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import g

from api import browser_session
from api.inputs import runtime
from service.corrections import actor_name


@dataclass(frozen=True)
class Actor:
    name: str  # what history shows
    staff_id: int | None  # the staff account, or None for a key


def acting_person() -> Actor:
    staff = browser_session.signed_in_staff()
    if staff is not None and staff.staff_id is not None:
        return Actor(staff.display_name or f"cuenta:{staff.staff_id}", staff.staff_id)
    return Actor(actor_name(runtime(), g.get("principal")), None)
