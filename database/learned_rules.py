"""Rules a tenant's corrections taught (extraction/learning.py): proposed, accepted by an admin,
or switched off. They belong to one tenant and never change the shipped rules file."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from database.core import Base, JSONType, utcnow


class LearnedRuleState:
    PROPOSED = "propuesta"
    ACTIVE = "activa"
    OFF = "desactivada"
    ALL = (PROPOSED, ACTIVE, OFF)


class LearnedRuleRow(Base):
    """One learned label for one field on one layout (its bank and its page's labels)."""

    __tablename__ = "learned_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    # sha256 of (campo, folded label, posicion): with a compatible bank, the same rule taught again.
    clave: Mapped[str] = mapped_column(String(64))
    campo: Mapped[str] = mapped_column(String(32))
    etiqueta: Mapped[str] = mapped_column(String(200))
    posicion: Mapped[str] = mapped_column(String(8))
    banco: Mapped[str | None] = mapped_column(String(120))
    etiquetas_pagina: Mapped[list[Any]] = mapped_column(JSONType)
    reglas_corregidas: Mapped[list[Any]] = mapped_column(JSONType)
    estado: Mapped[str] = mapped_column(String(16), default=LearnedRuleState.PROPOSED)
    # The correction it came from (the upload may be purged later: the rule stays).
    upload_id: Mapped[int | None] = mapped_column(ForeignKey("uploads.id", ondelete="SET NULL"))
    valor_ejemplo: Mapped[str | None] = mapped_column(Text)
    veces: Mapped[int] = mapped_column(Integer, default=1)  # corrections that taught it
    propuesta_por: Mapped[str] = mapped_column(String(160))
    propuesta_en: Mapped[datetime] = mapped_column(default=utcnow)
    aceptada_por: Mapped[str | None] = mapped_column(String(160))
    aceptada_en: Mapped[datetime | None]
    desactivada_por: Mapped[str | None] = mapped_column(String(160))
    desactivada_en: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("tenant_id", "clave", "banco", name="uq_learned_rules_tenant_clave_banco"),
        Index("ix_learned_rules_tenant_estado", "tenant_id", "estado"),
    )
