"""Bodies of the learned rules' endpoints (api/learned_rules.py)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, StrictBool

from api.schemas import Closed, NextCursor, PageQuery, Success, Timestamp

LearnedState = Literal["propuesta", "activa", "desactivada"]


class LearnedRulesQuery(PageQuery):
    estado: LearnedState | None = Field(None, description="Only rules in this state (all by default)")


class LearnedRuleView(Closed):
    id: int
    estado: LearnedState
    campo: str = Field(description="The field the rule reads")
    etiqueta: str = Field(description="The label that announces the value, as printed where it was learned")
    posicion: Literal["right", "below"] = Field(description="right: same line (or after the label); below: under it")
    banco: str | None = Field(description="The layout's bank, as the shipped rules read it (null: not read)")
    etiquetas_pagina: list[str] = Field(description="The layout's labels (folded): its signature with the bank")
    reglas_corregidas: list[str] = Field(description="Shipped rules a correction proved wrong on this layout: "
                                                     "only their values are replaced; otherwise the rule only fills "
                                                     "what the shipped rules missed")
    upload_id: int | None = Field(description="The corrected upload it was learned from")
    valor_ejemplo: str | None
    veces: int = Field(description="Corrections that taught it")
    propuesta_por: str
    propuesta_en: Timestamp
    aceptada_por: str | None
    aceptada_en: Timestamp | None
    desactivada_por: str | None
    desactivada_en: Timestamp | None


class LearnedRulesOut(Success):
    count: int
    items: list[LearnedRuleView]
    next_cursor: str | None = NextCursor


class LearnedRuleOut(Success):
    regla: LearnedRuleView
    releidos: int | None = Field(None, description="Pending receipts re-read and changed (when asked for)")


class AcceptBody(BaseModel):
    releer_pendientes: StrictBool = Field(False, description="Also re-read the tenant's receipts still pending "
                                                             "review and never corrected, with its active rules")
