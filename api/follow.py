"""Following one upload and acting on it: its status and result, its image, corrections of its
fields and its review state.

    GET   /uploads/<id>          status, batch, flags, review, corrections, result
    GET   /uploads/<id>/image    the stored image (nosniff)
    PATCH /uploads/<id>/fields   {field: value-or-null}: corrections, read as extraction reads values
    POST  /uploads/<id>/review   {"estado": "aprobado"|"rechazado"|"pendiente", "nota": ...}
    POST  /uploads/<id>/corrections/<cid>/undo   the field back to its value before that correction

Another tenant's upload answers 404 exactly as a missing one.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, send_file

from api.actor import acting_person
from api.errors import ApiError, ok
from api.inputs import json_body, runtime, tenant_id
from api.openapi import endpoint
from api.schemas_follow import FieldsBody, ReviewBody, UploadDetailOut
from service.corrections import (
    CorrectionNotFound,
    InvalidFields,
    InvalidReview,
    NotProcessed,
    UploadNotFound,
    apply_corrections,
    set_review,
    undo_correction,
)
from service.follow import upload_image, upload_view

blueprint = Blueprint("follow", __name__)

MIME_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "BMP": "image/bmp",
              "TIFF": "image/tiff", "WEBP": "image/webp"}


# Ids are 32-bit integers in the database; a larger one (the route takes any digits) is simply missing.
MAX_ID = 2**31 - 1


def _not_found(upload_id: int) -> ApiError:
    return ApiError(404, "not_found", f"No upload {upload_id}")


def _known(upload_id: int) -> int:
    if upload_id > MAX_ID:
        raise _not_found(upload_id)
    return upload_id


def _answer(upload_id: int) -> Response:
    view = upload_view(runtime(), tenant_id(), upload_id)
    if view is None:
        raise _not_found(upload_id)
    return ok({"upload": view})


NOT_FOUND = "not_found: no upload of this id in the tenant (another tenant's is missing too)"


@blueprint.get("/uploads/<int:upload_id>")
@endpoint("One upload: status, batch, flags, review, corrections, reconciliation and result", ok=UploadDetailOut,
          errors={404: NOT_FOUND})
def get_upload(upload_id: int) -> Response:
    _known(upload_id)
    return _answer(upload_id)


@blueprint.get("/uploads/<int:upload_id>/image")
@endpoint("The stored image of one upload (its own Content-Type, nosniff)", ok={200: None},
          media={200: (*MIME_TYPES.values(), "application/octet-stream")}, errors={404: f"{NOT_FOUND}, or purged"})
def get_image(upload_id: int) -> Response:
    _known(upload_id)
    found = upload_image(runtime(), tenant_id(), upload_id)
    if found is None:
        raise _not_found(upload_id)
    handle, image_format = found
    # send_file closes the handle when the response ends.
    response = send_file(handle, mimetype=MIME_TYPES.get(image_format or "", "application/octet-stream"),
                         max_age=0, conditional=False)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response




@blueprint.patch("/uploads/<int:upload_id>/fields")
@endpoint("Correct extracted fields: {field: value-or-null}; answers the upload as GET does", json=FieldsBody,
          ok=UploadDetailOut,
          errors={400: "invalid_field: details.field names the first bad field, details.fields all of them",
                  404: NOT_FOUND, 409: "not_processed: only a processed upload can be corrected (details.status)"})
def correct_fields(upload_id: int) -> Response:
    _known(upload_id)
    body: Any = json_body()
    try:
        actor = acting_person()
        apply_corrections(runtime(), tenant_id(), upload_id, body, actor.name, actor.staff_id)
    except InvalidFields as exc:
        fields = sorted(exc.reasons)
        first = fields[0]
        raise ApiError(400, "invalid_field", f"{first}: {exc.reasons[first]}",
                       details={"field": first, "fields": fields, "reasons": exc.reasons}) from None
    except UploadNotFound:
        raise _not_found(upload_id) from None
    except NotProcessed as exc:
        raise ApiError(409, "not_processed", f"The upload is {exc.status}; only a processed upload can be corrected",
                       details={"status": exc.status}) from None
    return _answer(upload_id)


@blueprint.post("/uploads/<int:upload_id>/review")
@endpoint("Approve, reject or reopen an upload, with a note; answers the upload as GET does", json=ReviewBody,
          ok=UploadDetailOut, errors={404: NOT_FOUND})
def review_upload(upload_id: int) -> Response:
    _known(upload_id)
    try:
        actor = acting_person()
        set_review(runtime(), tenant_id(), upload_id, json_body(), actor.name, actor.staff_id)
    except InvalidReview as exc:
        raise ApiError(400, "invalid_parameter", exc.message, details={"field": exc.field}) from None
    except UploadNotFound:
        raise _not_found(upload_id) from None
    return _answer(upload_id)


@blueprint.post("/uploads/<int:upload_id>/corrections/<int:correction_id>/undo")
@endpoint("Undo a correction: its field goes back to the value before it (a correction of its own, "
          "reconciled again); answers the upload as GET does", ok=UploadDetailOut,
          errors={404: f"{NOT_FOUND}, or no such correction of it",
                  409: "not_processed: only a processed upload can be corrected (details.status)"})
def undo_upload_correction(upload_id: int, correction_id: int) -> Response:
    _known(upload_id)
    if correction_id > MAX_ID:
        raise ApiError(404, "not_found", f"No correction {correction_id} of upload {upload_id}")
    try:
        actor = acting_person()
        undo_correction(runtime(), tenant_id(), upload_id, correction_id, actor.name, actor.staff_id)
    except (UploadNotFound, CorrectionNotFound):
        raise ApiError(404, "not_found", f"No correction {correction_id} of upload {upload_id}") from None
    except NotProcessed as exc:
        raise ApiError(409, "not_processed", f"The upload is {exc.status}; only a processed upload can be corrected",
                       details={"status": exc.status}) from None
    return _answer(upload_id)
