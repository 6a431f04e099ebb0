"""What the people API and the frontend's forms do, once: photos of people (encoded by the
face service), uploads of images, naming and rejecting faces, deletions -- each followed by a
re-match of the stored faces from their encodings.

Errors a client can cause are :class:`kubeface.core.web.HttpError` (or
:class:`kubeface.core.people.PeopleError` / :class:`kubeface.core.uploads.UploadError`, each
with an HTTP status); on any of them nothing is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from kubeface.core import image_queries, matching, people, uploads
from kubeface.core.config import Settings
from kubeface.core.db import Database, execute
from kubeface.core.paths import PathError, real_file
from kubeface.core.web import HttpError
from kubeface.processor.face_client import FaceClient, ImageError

log = logging.getLogger(__name__)

UPLOAD_MAX_FILES = 100
MAX_PERSON_ID = 2**31 - 1

# Publishes new image ids; answers (published, message for the client).
Publish = Callable[[list[int]], tuple[bool, str]]


class Upload(Protocol):
    """A received file: bottle's FileUpload has these."""

    raw_filename: str
    file: Any


def checked(files: Sequence[Upload], max_pixels: int) -> list[uploads.Checked]:
    """Every file decoded whole, or HttpError naming the bad ones: nothing is stored unless all
    are images."""
    found, errors, status = [], [], 400
    for upload in files:
        try:
            found.append(uploads.check(upload.raw_filename or "file", upload.file.read(),
                                       max_pixels))
        except uploads.UploadError as exc:
            errors.append(exc.message)
            status = max(status, exc.status)
    if errors:
        if len(files) == 1:
            raise HttpError(status, errors[0])
        raise HttpError(status, f"{len(errors)} of {len(files)} files refused; nothing was "
                                "stored", errors[:20])
    return found


class PeopleActions:
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

    def rematch(self, image_ids: list[int] | None = None) -> matching.Rematch:
        return matching.rematch(self.db, self.settings.face_tolerance, image_ids)

    # -- people and photos ------------------------------------------------------------------

    def delete_person(self, person_id: int) -> None:
        self.rematch(people.delete_person(self.db, person_id))

    def add_photo(self, person_id: int, upload: Upload, choice: str | None
                  ) -> tuple[int, people.Box]:
        """Store the photo, have its face encoded, make it a known face of the person."""
        if choice is not None and not (choice.isascii() and choice.isdigit()
                                       and int(choice) < 1000):
            raise HttpError(400, f'"face" must be the index of a face (0, 1, ...), got '
                                 f"{choice[:20]!r}")
        (photo,) = checked([upload], self.settings.face_max_pixels)
        relative = photo.relative(uploads.PHOTOS)
        written = uploads.store(self.root, relative, photo.data)
        try:
            face = self._one_face(relative, None if choice is None else int(choice))
            box = people.Box(face.box.top, face.box.right, face.box.bottom, face.box.left)
            photo_id = people.add_uploaded_photo(self.db, person_id, relative, photo.sha256,
                                                 box, list(face.encoding))
        except BaseException:
            if written and not people.file_in_use(self.db, relative, "upload"):
                uploads.remove(self.root, relative)
            raise
        self.rematch()
        return photo_id, box

    def _one_face(self, relative: str, choice: int | None) -> Any:
        try:
            answer = self.face.identify(relative)
        except ImageError as exc:
            raise HttpError(400, f"the face service refused the photo: {exc}") from None
        except Exception as exc:
            log.warning("face service unavailable for a photo: %s", exc)
            raise HttpError(503, "the face service is unavailable: nothing was stored, try "
                                 "again later") from None
        faces = list(answer.faces)
        if not faces:
            raise HttpError(400, "no face found in the photo: send a photo where the face is "
                                 "clearly visible")
        if choice is None and len(faces) > 1:
            boxes = [f"face {i}: top {f.box.top}, right {f.box.right}, bottom {f.box.bottom},"
                     f" left {f.box.left}" for i, f in enumerate(faces)]
            raise HttpError(400, f"the photo shows {len(faces)} faces: say which one with the "
                                 'form field "face" (its index, from 0, left to right)', boxes)
        index = choice or 0
        if index >= len(faces):
            raise HttpError(400, f"the photo shows {len(faces)} face(s): there is no face "
                                 f"{index}")
        if len(faces[index].encoding) != matching.DIMENSIONS:
            raise HttpError(503, "the face service did not return the face's encoding (an "
                                 "older version?): nothing was stored")
        return faces[index]

    def remove_photo(self, person_id: int, photo_id: int) -> None:
        affected = [int(r.image_id) for r in self.db.query(
            "SELECT DISTINCT image_id FROM faces WHERE photo_id = :p", p=photo_id)]
        removed = people.remove_photo(self.db, person_id, photo_id)
        # Only files this module wrote (a named face's fallback photo is the image itself).
        if removed.file.startswith(uploads.PHOTOS + "/") and not people.file_in_use(
                self.db, removed.file, removed.source):
            uploads.remove(self.root, removed.file)
        self.rematch(affected)

    # -- images -----------------------------------------------------------------------------

    def upload(self, files: Sequence[Upload]
               ) -> tuple[list[image_queries.Posted], bool, str]:
        """Store the files by content hash as pending images and publish the new ones."""
        if len(files) > UPLOAD_MAX_FILES:
            raise HttpError(413, f"{len(files)} files is over the limit of {UPLOAD_MAX_FILES} "
                                 "per request")
        found = checked(files, self.settings.face_max_pixels)
        relative = [c.relative(uploads.UPLOADS) for c in found]
        for c, path in zip(found, relative, strict=True):
            uploads.store(self.root, path, c.data)
        posted = image_queries.insert_pending(self.db, relative)
        ids = sorted({p.id for p in posted})
        if ids:
            self.db.execute("UPDATE images SET uploaded = 1"
                            f" WHERE id IN ({matching.sql_ints(ids)})")
        published, message = self.publish([p.id for p in posted if p.new])
        return posted, published, message

    def delete_image(self, image_id: int) -> None:
        with self.db.transaction() as conn:
            row = conn.query("SELECT path, uploaded FROM images WHERE id = :id FOR UPDATE",
                             id=image_id).first()
            if row is None:
                raise HttpError(404, f"no image with id {image_id}")
            execute(conn, "DELETE FROM images WHERE id = :id", id=image_id)
        if row.uploaded:
            uploads.remove(self.root, row.path)

    def name_face(self, image_id: int, index: int, person_id: Any) -> None:
        """"This face is that person"; ``person_id`` as the client gave it."""
        face = people.get_face(self.db, image_id, index)
        if isinstance(person_id, bool) or not isinstance(person_id, int) or \
                not 1 <= person_id <= MAX_PERSON_ID:
            raise HttpError(400, '"person_id" must be a person\'s id (an integer from 1), '
                                 f"got {str(person_id)[:40]!r}")
        people.require_person(self.db, person_id)
        file, sha = self._crop(face)
        people.assign_face(self.db, face, person_id, file, sha)
        self.rematch()

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

    def reject_face(self, image_id: int, index: int) -> None:
        people.reject_face(self.db, people.get_face(self.db, image_id, index))
        self.rematch()
