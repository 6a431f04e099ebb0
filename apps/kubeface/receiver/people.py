"""The receiver's people API: people and their photos, uploads of images, and corrections of
matched faces (``/people``, ``/images/upload``, ``/images/<id>/faces/<i>/person``,
``DELETE /images/<id>``).

A person's photo is encoded by the face service (the receiver has no face models): the file is
stored under the unknown-images root by content hash and the service is asked for its faces.
Every change of people is followed by a re-match of the stored faces from their encodings
(:mod:`kubeface.core.matching`), so the images are re-labelled before the answer is sent.
Errors are JSON ``{"error": ...}`` like the rest of the API; nothing is stored on a 4xx.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

import bottle

from kubeface.core import image_queries, people, uploads, web
from kubeface.core.config import Settings
from kubeface.core.db import Database
from kubeface.people_actions import UPLOAD_MAX_FILES, PeopleActions, Publish

log = logging.getLogger(__name__)

UPLOAD_MAX_BYTES = 32 << 20  # one multipart request, all its files together
JSON_MAX_BYTES = 64 << 10
MAX_ID = 2**31 - 1
MAX_IMAGE_ID = image_queries.MAX_ID

Refused = web.HttpError


def _json(status: int, body: Any) -> bottle.HTTPResponse:
    return web.json_response(status, body)


def _no_content() -> bottle.HTTPResponse:
    return bottle.HTTPResponse(b"", 204)


def _id(raw: str, what: str, high: int = MAX_ID) -> int:
    return web.int_param(raw, what, 1, high)


def _query_int(name: str, default: int, low: int, high: int) -> int:
    return web.int_param(bottle.request.query.get(name), name, low, high, default)


def _json_body(example: str) -> dict[str, Any]:
    body = web.read_json_body(bottle.request.environ, JSON_MAX_BYTES, "", example)
    if not isinstance(body, dict):
        raise Refused(400, "body must be a JSON object")
    return body


def _multipart() -> tuple[list[bottle.FileUpload], dict[str, str]]:
    """The files and the other fields of a multipart/form-data body read within the limit."""
    content_type = bottle.request.environ.get("CONTENT_TYPE", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise Refused(400, 'send the file as multipart/form-data, in the field "file"')
    raw = web.read_body(bottle.request.environ, UPLOAD_MAX_BYTES)
    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": content_type,
               "CONTENT_LENGTH": str(len(raw)), "wsgi.input": io.BytesIO(raw)}
    form = bottle.BaseRequest(environ)
    try:
        post = form.POST
        files = [v for v in post.getall("file") if isinstance(v, bottle.FileUpload)]
        fields = {k: v for k, v in post.items() if isinstance(v, str)}
    except bottle.HTTPError as exc:  # bottle's MultipartError
        raise Refused(400, f"malformed multipart body: {exc.body}") from None
    except (ValueError, UnicodeDecodeError, LookupError) as exc:
        raise Refused(400, f"malformed multipart body: {type(exc).__name__}") from None
    if not files:
        raise Refused(400, 'no file in the field "file" (multipart/form-data)')
    return files, fields


class PeopleApi:
    """The routes over :class:`PeopleActions`; ``publish`` is the receiver's publisher."""

    def __init__(self, settings: Settings, db: Database, publish: Publish) -> None:
        self.settings, self.db = settings, db
        self.actions = PeopleActions(settings, db, publish)

    def routes(self) -> list[tuple[str, str, Callable[..., bottle.HTTPResponse]]]:
        return [
            ("/people", "GET", self.list_people),
            ("/people", "POST", self.create_person),
            ("/people/<person_id>", "GET", self.get_person),
            ("/people/<person_id>", "PATCH", self.rename_person),
            ("/people/<person_id>", "DELETE", self.delete_person),
            ("/people/<person_id>/photos", "POST", self.add_photo),
            ("/people/<person_id>/photos/<photo_id>", "DELETE", self.remove_photo),
            ("/images/upload", "POST", self.upload_images),
            ("/images/<image_id>", "DELETE", self.delete_image),
            ("/images/<image_id>/faces/<index>/person", "PUT", self.name_face),
            ("/images/<image_id>/faces/<index>/person", "DELETE", self.reject_face),
        ]

    def register(self, app: bottle.Bottle) -> None:
        for path, method, handler in self.routes():
            app.route(path, method, web.guarded(self._answering(handler), web.json_error))

    def _answering(self, func: Callable[..., bottle.HTTPResponse]) -> Callable[..., Any]:
        def handle(**kwargs: Any) -> bottle.HTTPResponse:
            try:
                return func(**kwargs)
            except (people.PeopleError, uploads.UploadError) as exc:
                raise web.HttpError(exc.status, exc.message) from None
        return handle

    # -- people -----------------------------------------------------------------------------

    def list_people(self) -> bottle.HTTPResponse:
        limit = _query_int("limit", 100, 1, people.MAX_PAGE)
        offset = _query_int("offset", 0, 0, 10**9)
        q = bottle.request.query.getunicode("q", default="") or ""
        if len(q) > people.MAX_NAME:
            raise Refused(400, f"q is over {people.MAX_NAME} characters")
        found, total = people.list_people(self.db, q, limit, offset)
        return _json(200, {"people": [p.as_json() for p in found], "total": total,
                           "limit": limit, "offset": offset})

    def create_person(self) -> bottle.HTTPResponse:
        body = _json_body('{"name": "Ada Lovelace"}')
        if "name" not in body:
            raise Refused(400, 'body has no "name": send {"name": "Ada Lovelace"}')
        person = people.create_person(self.db, body["name"])
        return _json(201, {"id": person.id, "name": person.name})

    def _person_json(self, person: people.Person) -> dict[str, Any]:
        photos = people.photos_of(self.db, person.id)
        return {"id": person.id, "name": person.name, "images": person.images,
                "photos": [p.as_json() for p in photos]}

    def get_person(self, person_id: str) -> bottle.HTTPResponse:
        person = people.require_person(self.db, _id(person_id, "person id"))
        return _json(200, self._person_json(person))

    def rename_person(self, person_id: str) -> bottle.HTTPResponse:
        pid = _id(person_id, "person id")
        body = _json_body('{"name": "New Name"}')
        if "name" not in body:
            raise Refused(400, 'body has no "name": send {"name": "New Name"}')
        return _json(200, self._person_json(people.rename_person(self.db, pid, body["name"])))

    def delete_person(self, person_id: str) -> bottle.HTTPResponse:
        self.actions.delete_person(_id(person_id, "person id"))
        return _no_content()

    def add_photo(self, person_id: str) -> bottle.HTTPResponse:
        pid = _id(person_id, "person id")
        people.require_person(self.db, pid)
        files, fields = _multipart()
        if len(files) != 1:
            raise Refused(400, f'send one file in the field "file", got {len(files)}')
        photo_id, box = self.actions.add_photo(pid, files[0], fields.get("face"))
        return _json(201, {"photo_id": photo_id, "face": box.as_json()})

    def remove_photo(self, person_id: str, photo_id: str) -> bottle.HTTPResponse:
        self.actions.remove_photo(_id(person_id, "person id"), _id(photo_id, "photo id"))
        return _no_content()

    # -- images -----------------------------------------------------------------------------

    def upload_images(self) -> bottle.HTTPResponse:
        files, _ = _multipart()
        return _json(*image_queries.posted_json(*self.actions.upload(files)))

    def delete_image(self, image_id: str) -> bottle.HTTPResponse:
        self.actions.delete_image(_id(image_id, "image id", MAX_IMAGE_ID))
        return _no_content()

    def _image_json(self, image_id: int) -> bottle.HTTPResponse:
        image = image_queries.get_image(self.db, image_id)
        if image is None:  # deleted meanwhile
            raise Refused(404, f"no image with id {image_id}")
        return _json(200, image.as_json())

    def name_face(self, image_id: str, index: str) -> bottle.HTTPResponse:
        iid = _id(image_id, "image id", MAX_IMAGE_ID)
        face = _face_index(index)
        body = _json_body('{"person_id": 1}')
        self.actions.name_face(iid, face, body.get("person_id"))
        return self._image_json(iid)

    def reject_face(self, image_id: str, index: str) -> bottle.HTTPResponse:
        iid = _id(image_id, "image id", MAX_IMAGE_ID)
        self.actions.reject_face(iid, _face_index(index))
        return self._image_json(iid)


def _face_index(raw: str) -> int:
    return web.int_param(raw, "face index", 0, 100_000)


# -- the OpenAPI document's part ------------------------------------------------------------


def _answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR_TEXT = {
    400: "the request is malformed: the message says what to fix; nothing was stored",
    404: "no such person, photo, image or face",
    409: "a conflict: the name is taken, or the face has no match or no encoding",
    413: "the body, a file, its pixels or the number of files is over the limit",
    503: "the database or the face service is unavailable: try again later",
}


def _errors(*codes: int) -> dict[str, Any]:
    answers = {}
    for code in codes:
        answers[str(code)] = _answer(_ERROR_TEXT[code], {"$ref": "#/components/schemas/Error"})
        if code == 503:
            answers[str(code)]["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
    return answers


def _path_id(name: str, high: int = MAX_ID, low: int = 1) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": low, "maximum": high}}


def _json_request(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_NAME = {"type": "object", "required": ["name"], "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": people.MAX_NAME}}}


def openapi_paths() -> dict[str, dict[str, Any]]:
    """The people API's operations, for the receiver's OpenAPI document."""
    person, photo = [_path_id("person_id")], [_path_id("person_id"), _path_id("photo_id")]
    face = [_path_id("id", MAX_IMAGE_ID),
            {"name": "index", "in": "path", "required": True,
             "schema": {"type": "integer", "minimum": 0, "maximum": 100_000}}]
    multipart = {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary"},
            "face": {"type": "integer", "minimum": 0, "maximum": 999,
                     "description": "which face, when the photo shows several (from 0, "
                                    "left to right)"}}}}}}
    uploads_body = {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"], "properties": {
            "file": {"type": "array", "minItems": 1, "maxItems": UPLOAD_MAX_FILES,
                     "items": {"type": "string", "format": "binary"}}}}}},
        "description": f"the field `file` once or repeated; at most {UPLOAD_MAX_FILES} files "
                       f"and {UPLOAD_MAX_BYTES} bytes in all"}
    return {
        "/people": {
            "get": {"operationId": "listPeople", "summary": "People by name, with counts",
                    "parameters": [
                        {"name": "q", "in": "query", "required": False,
                         "description": "a part of the name, case-insensitive",
                         "schema": {"type": "string", "maxLength": people.MAX_NAME}},
                        {"name": "limit", "in": "query", "required": False,
                         "schema": {"type": "integer", "minimum": 1,
                                    "maximum": people.MAX_PAGE}},
                        {"name": "offset", "in": "query", "required": False,
                         "schema": {"type": "integer", "minimum": 0, "maximum": 10**9}}],
                    "responses": {"200": _answer("a page of people", _ref("PeoplePage")),
                                  **_errors(400, 503)}},
            "post": {"operationId": "createPerson", "summary": "Create a person",
                     "requestBody": _json_request(_NAME),
                     "responses": {"201": _answer("created", _ref("NewPerson")),
                                   **_errors(400, 409, 413, 503)}},
        },
        "/people/{person_id}": {
            "get": {"operationId": "getPerson", "summary": "A person with their photos",
                    "parameters": person,
                    "responses": {"200": _answer("the person", _ref("PersonDetail")),
                                  **_errors(400, 404, 503)}},
            "patch": {"operationId": "renamePerson", "summary": "Rename a person",
                      "parameters": person, "requestBody": _json_request(_NAME),
                      "responses": {"200": _answer("renamed", _ref("PersonDetail")),
                                    **_errors(400, 404, 409, 413, 503)}},
            "delete": {"operationId": "deletePerson",
                       "summary": "Delete a person, their photos and encodings; the images "
                                  "that matched them are matched again",
                       "parameters": person,
                       "responses": {"204": _answer("deleted"), **_errors(400, 404, 503)}},
        },
        "/people/{person_id}/photos": {"post": {
            "operationId": "addPhoto", "summary": "Add a photo of the person (one face)",
            "parameters": person, "requestBody": multipart,
            "responses": {"201": _answer("the photo's face is now known",
                                         _ref("PhotoAdded")),
                          **_errors(400, 404, 413, 503)}}},
        "/people/{person_id}/photos/{photo_id}": {"delete": {
            "operationId": "removePhoto", "summary": "Remove a photo; re-match",
            "parameters": photo,
            "responses": {"204": _answer("removed"), **_errors(400, 404, 503)}}},
        "/images/upload": {"post": {
            "operationId": "uploadImages",
            "summary": "Upload image files; stored by content hash and queued",
            "requestBody": uploads_body,
            "responses": {"202": _answer("stored and queued", _ref("PostedMany")),
                          "200": _answer("every file was uploaded before", _ref("PostedMany")),
                          **_errors(400, 413, 503)}}},
        "/images/{id}": {"delete": {
            "operationId": "deleteImage",
            "summary": "Delete an image and its faces (and its file, when uploaded)",
            "parameters": [_path_id("id", MAX_IMAGE_ID)],
            "responses": {"204": _answer("deleted"), **_errors(400, 404, 503)}}},
        "/images/{id}/faces/{index}/person": {
            "put": {"operationId": "nameFace",
                    "summary": "This face is that person: it becomes one of their known faces",
                    "parameters": face,
                    "requestBody": _json_request({
                        "type": "object", "required": ["person_id"], "properties": {
                            "person_id": {"type": "integer", "minimum": 1,
                                          "maximum": MAX_ID}}}),
                    "responses": {"200": _answer("the image, re-labelled", _ref("Image")),
                                  **_errors(400, 404, 409, 413, 503)}},
            "delete": {"operationId": "rejectFace",
                       "summary": "This face is not who it was matched to: never again",
                       "parameters": face,
                       "responses": {"200": _answer("the image, re-labelled", _ref("Image")),
                                     **_errors(400, 404, 409, 503)}},
        },
    }


def openapi_schemas() -> dict[str, Any]:
    box = {"type": "object", "required": ["top", "right", "bottom", "left"], "properties": {
        k: {"type": "integer"} for k in ("top", "right", "bottom", "left")}}
    person = {"type": "object", "required": ["id", "name", "photos", "images"], "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"},
        "photos": {"type": "integer"}, "images": {"type": "integer"}}}
    photo = {"type": "object", "required": ["id", "source", "file", "face"], "properties": {
        "id": {"type": "integer"}, "source": {"type": "string", "enum": list(
            people.PHOTO_SOURCES)},
        "file": {"type": "string"}, "face": box,
        "from_image_id": {"type": "integer", "nullable": True},
        "created_at": {"type": "string"}}}
    return {
        "Box": box,
        "Person": person,
        "PeoplePage": {"type": "object", "required": ["people", "total", "limit", "offset"],
                       "properties": {"people": {"type": "array", "items": _ref("Person")},
                                      "total": {"type": "integer"},
                                      "limit": {"type": "integer"},
                                      "offset": {"type": "integer"}}},
        "NewPerson": {"type": "object", "required": ["id", "name"], "properties": {
            "id": {"type": "integer"}, "name": {"type": "string"}}},
        "Photo": photo,
        "PersonDetail": {"type": "object", "required": ["id", "name", "images", "photos"],
                         "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                                        "images": {"type": "integer"},
                                        "photos": {"type": "array", "items": _ref("Photo")}}},
        "PhotoAdded": {"type": "object", "required": ["photo_id", "face"], "properties": {
            "photo_id": {"type": "integer"}, "face": _ref("Box")}},
    }


def extend_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the people API's operations and schemas added."""
    for path, operations in openapi_paths().items():
        document["paths"].setdefault(path, {}).update(operations)
    document["components"]["schemas"].update(openapi_schemas())
    return document
