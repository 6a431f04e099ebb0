"""The frontend's people pages and forms: the people list and search, a page per person (their
photos and the images they are in), uploads of photos and of images, and a form on each face
of an image page (name it, or "not this person"). Thumbnails are made here and cached.

Plain HTML forms, no script. Every form carries a CSRF token (:mod:`kubeface.frontend.forms`,
checked for every POST route of the frontend).
"""

from __future__ import annotations

import io
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import bottle
from PIL import Image, ImageOps

from kubeface.core import image_queries, people, web
from kubeface.core.config import Settings
from kubeface.core.db import Database
from kubeface.core.paths import PathError, real_file
from kubeface.core.queue import Publisher, PublishError
from kubeface.frontend.forms import csrf_token
from kubeface.people_actions import PeopleActions

log = logging.getLogger(__name__)

THUMB_SIDE = 160
THUMBS_CACHED = 512
PAGE = 24


class Thumbnails:
    """JPEG thumbnails, made once per file version and kept in a small LRU cache."""

    def __init__(self, size: int = THUMBS_CACHED) -> None:
        self._cache: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get(self, path: Path, box: tuple[int, int, int, int] | None = None) -> bytes:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size, box)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        data = _thumbnail(path, box)
        with self._lock:
            self._cache[key] = data
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return data


def _thumbnail(path: Path, box: tuple[int, int, int, int] | None) -> bytes:
    with Image.open(path) as im:
        if im.width * im.height > 100_000_000:
            raise ValueError("too many pixels for a thumbnail")
        if box is None:
            im.draft("RGB", (THUMB_SIDE * 2, THUMB_SIDE * 2))  # JPEG: decode at a reduced scale
        upright = ImageOps.exif_transpose(im).convert("RGB")
    if box is not None:  # the face, in the upright picture's pixels, with a margin
        top, right, bottom, left = box
        mx, my = (right - left) // 4, (bottom - top) // 4
        upright = upright.crop((max(0, left - mx), max(0, top - my),
                                min(upright.width, right + mx), min(upright.height, bottom + my)))
    upright.thumbnail((THUMB_SIDE, THUMB_SIDE))
    out = io.BytesIO()
    upright.save(out, "JPEG", quality=85)
    return out.getvalue()


class PeoplePages:
    def __init__(self, settings: Settings, db: Database,
                 render: Callable[..., bottle.HTTPResponse],
                 error_page: Callable[[web.HttpError], bottle.HTTPResponse]) -> None:
        self.settings, self.db, self.render, self.error_page = settings, db, render, error_page
        self.publisher = Publisher.for_settings(settings)
        self.actions = PeopleActions(settings, db, self._publish)
        self.thumbs = Thumbnails()

    def register(self, app: bottle.Bottle) -> None:
        for path, method, handler in [
            ("/people", "GET", self.people_page),
            ("/people", "POST", self.create_person),
            ("/people/<person_id>", "GET", self.person_page),
            ("/people/<person_id>/rename", "POST", self.rename_person),
            ("/people/<person_id>/delete", "POST", self.delete_person),
            ("/people/<person_id>/photos", "POST", self.add_photo),
            ("/people/<person_id>/photos/<photo_id>/delete", "POST", self.remove_photo),
            ("/photos/<photo_id>/thumb", "GET", self.photo_thumb),
            ("/images/<image_id>/thumb", "GET", self.image_thumb),
            ("/upload", "GET", self.upload_page),
            ("/upload", "POST", self.upload),
            ("/images/<image_id>/faces/<index>/name", "POST", self.name_face),
            ("/images/<image_id>/faces/<index>/reject", "POST", self.reject_face),
        ]:
            app.route(path, method, web.guarded(self._errors_as_pages(handler),
                                                self.error_page))

    def _errors_as_pages(self, func: Callable[..., Any]) -> Callable[..., Any]:
        def handle(**kwargs: Any) -> Any:
            try:
                return func(**kwargs)
            except (people.PeopleError, web.HttpError) as exc:
                raise web.HttpError(exc.status, exc.message,
                                    getattr(exc, "details", None)) from None
        return handle

    def _publish(self, ids: list[int]) -> tuple[bool, str]:
        if not ids:
            return True, "nothing new to publish"
        try:
            self.publisher.publish_many(ids)
        except PublishError as exc:
            log.warning("publish of %d uploaded image(s) failed, left pending: %s", len(ids),
                        exc)
            return False, "stored as pending; the retry job will queue them"
        return True, f"queued {len(ids)} image(s)"

    @staticmethod
    def _redirect(location: str) -> bottle.HTTPResponse:
        return bottle.HTTPResponse(status=303, headers={"Location": location})

    def _person_id(self, raw: str) -> int:
        return web.int_param(raw, "person id", 1, 2**31 - 1)

    # -- pages ------------------------------------------------------------------------------

    def people_page(self) -> bottle.HTTPResponse:
        q = (bottle.request.query.getunicode("q", default="") or "")[:people.MAX_NAME]
        offset = web.int_param(bottle.request.query.get("offset"), "offset", 0, 10**9, 0)
        found, total = people.list_people(self.db, q.strip(), PAGE, offset)
        first = self._first_photos([p.id for p in found])
        return self.render("people", people_list=found, total=total, q=q, offset=offset,
                           page=PAGE, first=first, csrf=csrf_token(), quote=quote)

    def _first_photos(self, ids: list[int]) -> dict[int, int]:
        if not ids:
            return {}
        rows = self.db.query("SELECT person_id, MIN(id) AS id FROM person_photos"
                             f" WHERE person_id IN ({','.join(map(str, ids))})"
                             " GROUP BY person_id")
        return {int(r.person_id): int(r.id) for r in rows}

    def create_person(self) -> bottle.HTTPResponse:
        person = people.create_person(self.db, bottle.request.forms.getunicode("name", ""))
        return self._redirect(f"/people/{person.id}")

    def person_page(self, person_id: str) -> bottle.HTTPResponse:
        person = people.require_person(self.db, self._person_id(person_id))
        offset = web.int_param(bottle.request.query.get("offset"), "offset", 0, 10**9, 0)
        images, total = people.images_of(self.db, person.id, PAGE, offset)
        return self.render("person", person=person, photos=people.photos_of(self.db, person.id),
                           images=images, total=total, offset=offset, page=PAGE,
                           csrf=csrf_token())

    def rename_person(self, person_id: str) -> bottle.HTTPResponse:
        pid = self._person_id(person_id)
        people.rename_person(self.db, pid, bottle.request.forms.getunicode("name", ""))
        return self._redirect(f"/people/{pid}")

    def delete_person(self, person_id: str) -> bottle.HTTPResponse:
        self.actions.delete_person(self._person_id(person_id))
        return self._redirect("/people")

    def add_photo(self, person_id: str) -> bottle.HTTPResponse:
        pid = self._person_id(person_id)
        people.require_person(self.db, pid)
        upload = bottle.request.files.get("file")
        if upload is None:
            raise web.HttpError(400, "Choose a photo to upload.")
        face = (bottle.request.forms.get("face") or "").strip() or None
        self.actions.add_photo(pid, upload, face)
        return self._redirect(f"/people/{pid}")

    def remove_photo(self, person_id: str, photo_id: str) -> bottle.HTTPResponse:
        pid = self._person_id(person_id)
        self.actions.remove_photo(pid, web.int_param(photo_id, "photo id", 1, 2**31 - 1))
        return self._redirect(f"/people/{pid}")

    def upload_page(self) -> bottle.HTTPResponse:
        return self.render("upload", csrf=csrf_token())

    def upload(self) -> bottle.HTTPResponse:
        files = bottle.request.files.getall("file")
        if not files:
            raise web.HttpError(400, "Choose one or more images to upload.")
        posted, _, _ = self.actions.upload(files)
        return self._redirect(f"/images/{posted[0].id}" if len(posted) == 1 else "/")

    # -- faces of an image ------------------------------------------------------------------

    def people_choices(self) -> list[tuple[int, str]]:
        """The people to choose from (id, name), by name: the index's filter, the face forms."""
        choices = self.db.query("SELECT id, name FROM person ORDER BY name LIMIT 1000")
        return [(int(r.id), r.name) for r in choices]

    def image_extras(self) -> dict[str, Any]:
        """What the image page needs for its face forms."""
        return {"people_choices": self.people_choices(), "csrf": csrf_token()}

    def _face(self, image_id: str, index: str) -> tuple[int, int]:
        return (web.int_param(image_id, "image id", 1, image_queries.MAX_ID),
                web.int_param(index, "face index", 0, 100_000))

    def name_face(self, image_id: str, index: str) -> bottle.HTTPResponse:
        iid, face = self._face(image_id, index)
        new_name = (bottle.request.forms.getunicode("new_name", "") or "").strip()
        if new_name:
            existing = self.db.query("SELECT id FROM person WHERE name = :n",
                                     n=people.check_name(new_name))
            person_id = int(existing[0].id) if existing else \
                people.create_person(self.db, new_name).id
        else:
            person_id = web.int_param(bottle.request.forms.get("person_id"), "person", 1,
                                      2**31 - 1)
            if person_id is None:
                raise web.HttpError(400, "Pick a person or type a new name.")
        self.actions.name_face(iid, face, person_id)
        return self._redirect(f"/images/{iid}")

    def reject_face(self, image_id: str, index: str) -> bottle.HTTPResponse:
        iid, face = self._face(image_id, index)
        self.actions.reject_face(iid, face)
        return self._redirect(f"/images/{iid}")

    # -- thumbnails -------------------------------------------------------------------------

    def _jpeg(self, path: Path, box: tuple[int, int, int, int] | None) -> bottle.HTTPResponse:
        try:
            data = self.thumbs.get(path, box)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise web.HttpError(404, f"No thumbnail: the file cannot be read "
                                     f"({type(exc).__name__})") from None
        return bottle.HTTPResponse(data, 200, {"Content-Type": "image/jpeg",
                                               "Cache-Control": "private, max-age=300"})

    def photo_thumb(self, photo_id: str) -> bottle.HTTPResponse:
        photo = people.get_photo(self.db, web.int_param(photo_id, "photo id", 1, 2**31 - 1))
        if photo is None:
            raise web.HttpError(404, "No such photo")
        root = self.settings.known_people if photo.source == "folder" else \
            self.settings.unknown_people
        try:
            path = real_file(photo.file, root)
        except PathError as exc:
            raise web.HttpError(404, f"No thumbnail: {exc}") from None
        crop = photo.source != "face"  # a named face's file is its crop already
        b = photo.box
        return self._jpeg(path, (b.top, b.right, b.bottom, b.left) if crop else None)

    def image_thumb(self, image_id: str) -> bottle.HTTPResponse:
        image = image_queries.get_image(self.db, web.int_param(image_id, "image id", 1,
                                                                image_queries.MAX_ID))
        if image is None:
            raise web.HttpError(404, "No such image")
        try:
            path = real_file(image.path, self.settings.unknown_people)
        except PathError as exc:
            raise web.HttpError(404, f"No thumbnail: {exc}") from None
        return self._jpeg(path, None)
