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
import json
import logging
from collections.abc import Callable
from typing import Any

import bottle

from kubeface.core import image_queries, matching, people, uploads
from kubeface.core.config import Settings
from kubeface.core.db import Database, execute
from kubeface.core.paths import PathError, real_file
from kubeface.processor.face_client import FaceClient, ImageError

log = logging.getLogger(__name__)

UPLOAD_MAX_BYTES = 32 << 20  # one multipart request, all its files together
UPLOAD_MAX_FILES = 100
JSON_MAX_BYTES = 64 << 10
MAX_ID = 2**31 - 1
MAX_IMAGE_ID = 2**63 - 1
RETRY_AFTER = "5"

Publish = Callable[[list[int]], tuple[bool, str]]


class Refused(Exception):
    """An answer other than success, as JSON."""

    def __init__(self, status: int, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details


def _json(status: int, body: Any) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(json.dumps(body, ensure_ascii=False), status,
                               {"Content-Type": "application/json; charset=utf-8"})


def _no_content() -> bottle.HTTPResponse:
    return bottle.HTTPResponse(b"", 204)


def _id(raw: str, what: str, high: int = MAX_ID) -> int:
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= high:
        raise Refused(400, f"{what} must be an integer from 1 to {high}, got {raw[:40]!r}")
    return int(raw)


def _query_int(name: str, default: int, low: int, high: int) -> int:
    raw = bottle.request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise Refused(400, f"{name} must be an integer from {low} to {high}, got {raw[:40]!r}")
    return int(raw)


def _read_body(limit: int) -> bytes:
    environ = bottle.request.environ
    length = environ.get("CONTENT_LENGTH") or ""
    if length:
        if not length.isdigit():
            raise Refused(400, f"Content-Length {length[:20]!r} is not a number")
        if int(length) > limit:
            raise Refused(413, f"body of {length} bytes is over the limit of {limit} bytes")
    raw = environ["wsgi.input"].read(limit + 1)
    if len(raw) > limit:
        raise Refused(413, f"body is over the limit of {limit} bytes")
    return raw


def _json_body() -> dict[str, Any]:
    raw = _read_body(JSON_MAX_BYTES)
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise Refused(400, "body is not UTF-8 text: send JSON") from None
    except json.JSONDecodeError as exc:
        raise Refused(400, f"body is not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise Refused(400, "body is JSON nested too deeply") from None
    if not isinstance(body, dict):
        raise Refused(400, "body must be a JSON object")
    return body


def _multipart() -> tuple[list[bottle.FileUpload], dict[str, str]]:
    """The files and the other fields of a multipart/form-data body read within the limit."""
    content_type = bottle.request.environ.get("CONTENT_TYPE", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise Refused(400, 'send the file as multipart/form-data, in the field "file"')
    raw = _read_body(UPLOAD_MAX_BYTES)
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


def _checked(files: list[bottle.FileUpload], max_pixels: int) -> list[uploads.Checked]:
    """Every file decoded whole, or Refused naming the bad ones: nothing is stored unless all
    are images."""
    checked, errors, status = [], [], 400
    for upload in files:
        try:
            checked.append(uploads.check(upload.raw_filename or "file",
                                         upload.file.read(), max_pixels))
        except uploads.UploadError as exc:
            errors.append(exc.message)
            status = max(status, exc.status)
    if errors:
        raise Refused(status, f"{len(errors)} of {len(files)} files refused; nothing was stored"
                      if len(files) > 1 else errors[0], errors[:20] if len(files) > 1 else None)
    return checked


class PeopleApi:
    """The routes; ``publish`` is the receiver's publisher of new image ids."""

    def __init__(self, settings: Settings, db: Database, publish: Publish) -> None:
        self.settings, self.db, self.publish = settings, db, publish
        self.root = settings.unknown_people
        self._face: FaceClient | None = None

    @property
    def face(self) -> FaceClient:
        if self._face is None:  # one channel, opened when a photo first needs encoding
            self._face = FaceClient(self.settings.grpc_address,
                                    self.settings.grpc_timeout_seconds)
        return self._face

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
            app.route(path, method, self._answering(handler))

    def _answering(self, func: Callable[..., bottle.HTTPResponse]) -> Callable[..., Any]:
        def handle(**kwargs: Any) -> bottle.HTTPResponse:
            try:
                return func(**kwargs)
            except (Refused, people.PeopleError, uploads.UploadError) as exc:
                body: dict[str, Any] = {"error": exc.message}
                if getattr(exc, "details", None):
                    body["details"] = exc.details
                return _json(exc.status, body)
            except image_queries.DATABASE_AWAY as exc:
                log.warning("database unavailable: %s", getattr(exc, "orig", exc))
                answer = _json(503, {"error": "the database is unavailable: nothing was "
                                              "stored, try again later"})
                answer.set_header("Retry-After", RETRY_AFTER)
                return answer
        return handle

    def rematch(self, image_ids: list[int] | None = None) -> matching.Rematch:
        return matching.rematch(self.db, self.settings.face_tolerance, image_ids)

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
        body = _json_body()
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
        body = _json_body()
        if "name" not in body:
            raise Refused(400, 'body has no "name": send {"name": "New Name"}')
        return _json(200, self._person_json(people.rename_person(self.db, pid, body["name"])))

    def delete_person(self, person_id: str) -> bottle.HTTPResponse:
        affected = people.delete_person(self.db, _id(person_id, "person id"))
        self.rematch(affected)
        return _no_content()

    # -- photos -----------------------------------------------------------------------------

    def add_photo(self, person_id: str) -> bottle.HTTPResponse:
        pid = _id(person_id, "person id")
        people.require_person(self.db, pid)
        files, fields = _multipart()
        if len(files) != 1:
            raise Refused(400, f'send one file in the field "file", got {len(files)}')
        choice = fields.get("face")
        if choice is not None and not (choice.isascii() and choice.isdigit()
                                       and int(choice) < 1000):
            raise Refused(400, f'"face" must be the index of a face (0, 1, ...), got '
                               f"{choice[:20]!r}")
        (photo,) = _checked(files, self.settings.face_max_pixels)
        relative = photo.relative(uploads.PHOTOS)
        written = uploads.store(self.root, relative, photo.data)
        try:
            face = self._one_face(relative, None if choice is None else int(choice))
            photo_id = people.add_uploaded_photo(
                self.db, pid, relative, photo.sha256,
                people.Box(face.box.top, face.box.right, face.box.bottom, face.box.left),
                list(face.encoding))
        except BaseException:
            if written and not people.file_in_use(self.db, relative, "upload"):
                uploads.remove(self.root, relative)
            raise
        self.rematch()
        return _json(201, {"photo_id": photo_id, "face": {
            "top": face.box.top, "right": face.box.right, "bottom": face.box.bottom,
            "left": face.box.left}})

    def _one_face(self, relative: str, choice: int | None) -> Any:
        try:
            answer = self.face.identify(relative)
        except ImageError as exc:
            raise Refused(400, f"the face service refused the photo: {exc}") from None
        except Exception as exc:
            log.warning("face service unavailable for a photo: %s", exc)
            raise Refused(503, "the face service is unavailable: nothing was stored, try "
                               "again later") from None
        faces = list(answer.faces)
        if not faces:
            raise Refused(400, "no face found in the photo: send a photo where the face is "
                               "clearly visible")
        if choice is None and len(faces) > 1:
            boxes = [f"face {i}: top {f.box.top}, right {f.box.right}, bottom {f.box.bottom},"
                     f" left {f.box.left}" for i, f in enumerate(faces)]
            raise Refused(400, f"the photo shows {len(faces)} faces: say which one with the "
                               'form field "face" (its index, from 0, left to right)', boxes)
        index = choice or 0
        if index >= len(faces):
            raise Refused(400, f"the photo shows {len(faces)} face(s): there is no face {index}")
        if len(faces[index].encoding) != matching.DIMENSIONS:
            raise Refused(503, "the face service did not return the face's encoding (an older "
                               "version?): nothing was stored")
        return faces[index]

    def remove_photo(self, person_id: str, photo_id: str) -> bottle.HTTPResponse:
        pid, phid = _id(person_id, "person id"), _id(photo_id, "photo id")
        affected = [int(r.image_id) for r in self.db.query(
            "SELECT DISTINCT image_id FROM faces WHERE photo_id = :p", p=phid)]
        removed = people.remove_photo(self.db, pid, phid)
        # Only files this API wrote (a named face's fallback photo is the image itself).
        if removed.file.startswith(uploads.PHOTOS + "/") and not people.file_in_use(
                self.db, removed.file, removed.source):
            uploads.remove(self.root, removed.file)
        self.rematch(affected)
        return _no_content()

    # -- images -----------------------------------------------------------------------------

    def upload_images(self) -> bottle.HTTPResponse:
        files, _ = _multipart()
        if len(files) > UPLOAD_MAX_FILES:
            raise Refused(413, f"{len(files)} files is over the limit of {UPLOAD_MAX_FILES} per "
                               "request")
        checked = _checked(files, self.settings.face_max_pixels)
        relative = [c.relative(uploads.UPLOADS) for c in checked]
        for c, path in zip(checked, relative, strict=True):
            uploads.store(self.root, path, c.data)
        posted = image_queries.insert_pending(self.db, relative)
        ids = sorted({p.id for p in posted})
        if ids:
            self.db.execute("UPDATE images SET uploaded = 1"
                            f" WHERE id IN ({matching.sql_ints(ids)})")
        new_ids = [p.id for p in posted if p.new]
        published, message = self.publish(new_ids)
        return _json(202 if new_ids else 200, {
            "images": [{"id": p.id, "path": p.path, "status": p.status.value,
                        "already_posted": not p.new} for p in posted],
            "accepted": len(new_ids), "already_posted": len(posted) - len(new_ids),
            "published": published, "message": message,
        })

    def delete_image(self, image_id: str) -> bottle.HTTPResponse:
        iid = _id(image_id, "image id", MAX_IMAGE_ID)
        with self.db.transaction() as conn:
            row = conn.query("SELECT path, uploaded FROM images WHERE id = :id FOR UPDATE",
                             id=iid).first()
            if row is None:
                raise Refused(404, f"no image with id {iid}")
            execute(conn, "DELETE FROM images WHERE id = :id", id=iid)
        if row.uploaded:
            uploads.remove(self.root, row.path)
        return _no_content()

    def _face_of(self, image_id: str, index: str) -> people.StoredFace:
        iid = _id(image_id, "image id", MAX_IMAGE_ID)
        if not index.isascii() or not index.isdigit() or int(index) > 100_000:
            raise Refused(400, f"face index must be an integer from 0, got {index[:20]!r}")
        return people.get_face(self.db, iid, int(index))

    def _image_json(self, image_id: int) -> bottle.HTTPResponse:
        image = image_queries.get_image(self.db, image_id)
        if image is None:  # deleted meanwhile
            raise Refused(404, f"no image with id {image_id}")
        return _json(200, image.as_json())

    def name_face(self, image_id: str, index: str) -> bottle.HTTPResponse:
        face = self._face_of(image_id, index)
        body = _json_body()
        person_id = body.get("person_id")
        if isinstance(person_id, bool) or not isinstance(person_id, int) or \
                not 1 <= person_id <= MAX_ID:
            raise Refused(400, f'"person_id" must be a person\'s id (an integer from 1), got '
                               f"{json.dumps(person_id)[:40]}")
        people.require_person(self.db, person_id)
        file, sha = self._crop(face)
        people.assign_face(self.db, face, person_id, file, sha)
        self.rematch()
        return self._image_json(face.image_id)

    def _crop(self, face: people.StoredFace) -> tuple[str, str]:
        """The face's crop stored as a photo file; the image itself when it cannot be read."""
        try:
            crop = uploads.crop(real_file(face.image_path, self.root),
                                (face.box.top, face.box.right, face.box.bottom, face.box.left),
                                self.settings.face_max_pixels)
        except (PathError, OSError, ValueError, uploads.UploadError) as exc:
            log.info("face %d of image %d not cropped (%s): its photo is the image",
                     face.index, face.image_id, exc)
            return face.image_path, "0" * 64
        relative = crop.relative(uploads.PHOTOS)
        uploads.store(self.root, relative, crop.data)
        return relative, crop.sha256

    def reject_face(self, image_id: str, index: str) -> bottle.HTTPResponse:
        face = self._face_of(image_id, index)
        people.reject_face(self.db, face)
        self.rematch()
        return self._image_json(face.image_id)


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
