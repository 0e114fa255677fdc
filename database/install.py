"""Settings recorded once per installation in the database itself, not in the environment.

`anonymous_access` decides whether a request without a key is let in (as the default tenant's
admin, from the loopback interface only unless ALLOW_ANONYMOUS is set): written by migration
0006 when the database is created, turned off for good by the first key created. It is read,
never inferred: an empty or failing query can no longer open the service to anonymous callers.
"""
from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from database.core import Base

ANONYMOUS_ACCESS = "anonymous_access"


class AnonymousAccess:
    LOOPBACK = "loopback"  # key-less callers on 127.0.0.1/::1 (or anywhere with ALLOW_ANONYMOUS) are admin of default
    OFF = "off"  # every request needs a key
    ALL = (LOOPBACK, OFF)


class InstallSetting(Base):
    """One named setting of the installation (see the module docstring for the names in use)."""

    __tablename__ = "install_settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))
