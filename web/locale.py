"""What the desk's script needs to show things the Venezuelan way: the time zone of its times
(DESK_TIME_ZONE). Amounts (21.070,56 Bs) and dates (20/06/2025) are formatted by the page's
script with the es-VE conventions; the API stays ISO."""
from __future__ import annotations

from typing import Any


def desk_settings(settings: dict[str, Any]) -> dict[str, str]:
    return {"zona": settings["DESK_TIME_ZONE"]}
