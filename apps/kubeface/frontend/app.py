"""``kubeface frontend``: the "Persons of Interest" table and a page per image (port 8081).

Plain server-rendered Bottle templates, no JavaScript: every value is HTML-escaped by the
templates, the table costs three queries whatever its size (rows with their person joined in, the
counts per status, the people of its filter), and the database being away gives a 503 page that
reloads itself until it is back: the process keeps serving.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bottle
from PIL import Image as PILImage

from kubeface.core import auth, exif, image_queries, web
from kubeface.core.auth import Users
from kubeface.core.config import Settings
from kubeface.core.db import Database
from kubeface.core.paths import PathError, open_image, real_file
from kubeface.core.statuses import Status
from kubeface.frontend import dashboard, forms
from kubeface.frontend.login import Login, current_user
from kubeface.frontend.people import PeoplePages

log = logging.getLogger(__name__)

VIEWS = Path(__file__).with_name("views")
LOOKUP = [str(VIEWS)]  # one list: Bottle caches compiled templates by the lookup's id()
# No script at all, and pictures only from this server.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class Picture:
    """An image file as the browser will show it, or why it cannot be shown."""

    width: int = 0
    height: int = 0
    mime: str | None = None
    file: Path | None = None
    problem: str | None = None


def picture(stored_path: str, root: Path) -> Picture:
    """Open the file only through :func:`real_file` (inside the image root, links resolved)
    and :func:`open_image` (a regular file, never a blocking open)."""
    try:
        path = real_file(stored_path, root)
        with open_image(path) as file, PILImage.open(file) as im:
            width, height = im.size
            orientation = exif.orientation(im)
            mime = PILImage.MIME.get(im.format or "")
    except PathError as exc:
        return Picture(problem=str(exc))
    except FileNotFoundError:
        return Picture(problem="the file is not in the image folder")
    except Exception as exc:  # any undecodable file is "not an image", never a crash
        return Picture(problem=f"the file is not a readable image ({type(exc).__name__})")
    if mime is None:
        return Picture(problem="the file is not an image a browser shows")
    if orientation in exif.QUARTER_TURNS:  # the face boxes are in upright pixels
        width, height = height, width
    return Picture(width, height, mime, path)


class Frontend:
    """The pages; ``users`` None serves them without a login (FRONTEND_AUTH=off)."""

    def __init__(self, settings: Settings, db: Database, users: Users | None) -> None:
        self.settings, self.db = settings, db
        self.app = bottle.Bottle(catchall=True)
        self.app.default_error_handler = web.error_handler(  # type: ignore[method-assign]
            self.error_page, "frontend")
        self.app.add_hook("after_request", self._security_headers)
        # Plugins: the first installed runs first. A session, then the CSRF token of a post,
        # then the handler; a page that minted a CSRF token sets its cookie.
        if users is not None:
            Login(settings, users, self.render, self.error_page).register(self.app)
        self.app.install(forms.csrf_check_plugin(self.error_page))
        self.app.install(forms.csrf_cookie_plugin)
        route = self.app.route
        route("/", "GET", web.guarded(self.index, self.error_page))
        route("/images/<image_id>", "GET", web.guarded(self.image_page, self.error_page))
        route("/images/<image_id>/picture", "GET", web.guarded(self.picture, self.error_page))
        self.people = PeoplePages(settings, db, self.render, self.error_page)
        self.people.register(self.app)
        route("/healthz", "GET", lambda: web.json_response(200, {"status": web.OK}))
        route("/readyz", "GET", lambda: web.readiness(
            {"database": lambda: web.database_check(self.db)}))
        dashboard.install(self)

    def render(self, template: str, http_status: int = 200, **values: Any
               ) -> bottle.HTTPResponse:
        body = bottle.template(template, template_lookup=LOOKUP, Status=Status,
                               user=current_user(), **values)
        return bottle.HTTPResponse(body, http_status,
                                   {"Content-Type": "text/html; charset=utf-8",
                                    **SECURITY_HEADERS})

    def error_page(self, error: web.HttpError) -> bottle.HTTPResponse:
        """An error as a page; the database away is a page that reloads itself until it is
        back."""
        if error.status == 503:
            response = self.render("unavailable", 503, refresh=web.RETRY_AFTER_SECONDS)
        else:
            response = self.render("error", error.status, code=error.status,
                                   message=error.message)
        for name, value in error.headers.items():
            response.set_header(name, value)
        return response

    def _security_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            bottle.response.set_header(name, value)

    # -- pages ------------------------------------------------------------------------------

    def index(self) -> bottle.HTTPResponse:
        query = bottle.request.query
        raw_status = query.get("status", "")
        status = Status(raw_status) if raw_status in set(Status) else None
        before = web.int_param(query.get("before"), "before", 1, image_queries.MAX_ID)
        after = web.int_param(query.get("after"), "after", 1, image_queries.MAX_ID)
        person = web.int_param(query.get("person"), "person", 1, 2**31 - 1)
        size = self.settings.frontend_page_size
        # One row more than shown tells whether there is another page that way.
        rows = image_queries.list_images(self.db, status=status, limit=size + 1,
                                         before=before, after=None if before else after,
                                         person_id=person)
        if after is not None and before is None:
            has_newer, has_older = len(rows) > size, True
            rows = rows[-size:]
        else:
            has_newer, has_older = before is not None, len(rows) > size
            rows = rows[:size]
        counts = image_queries.status_counts(self.db)
        busy = counts[Status.PENDING] + counts[Status.PROCESSING]
        return self.render(
            "index", images=rows, counts=counts, total=sum(counts.values()), status=status,
            has_newer=has_newer and bool(rows), has_older=has_older and bool(rows),
            refresh=self.settings.frontend_refresh_seconds if busy else None,
            person=person, people_choices=self.people.people_choices(),
        )

    def _image(self, image_id: str) -> image_queries.Image:
        number = web.int_param(image_id, "image id", 1, image_queries.MAX_ID)
        image = image_queries.get_image(self.db, number)
        if image is None:
            raise web.HttpError(404, f"No image with id {number}")
        return image

    def image_page(self, image_id: str) -> bottle.HTTPResponse:
        image = self._image(image_id)
        pic = picture(image.path, self.settings.unknown_people)
        busy = not image.status.terminal
        return self.render("image", image=image, pic=pic,
                           refresh=self.settings.frontend_refresh_seconds if busy else None,
                           **self.people.image_extras())

    def picture(self, image_id: str) -> Any:
        image = self._image(image_id)
        pic = picture(image.path, self.settings.unknown_people)
        if pic.file is None:
            raise web.HttpError(404, f"No picture: {pic.problem}")
        return bottle.static_file(pic.file.name, root=str(pic.file.parent), mimetype=pic.mime)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=8, help="worker threads (default 8)")


def main(settings: Settings, args: argparse.Namespace) -> int:
    users = auth.frontend_guard(settings)  # before anything starts: no users, no pages
    return web.serve_on_database(settings, "frontend", settings.frontend_port, args.threads,
                                 lambda db: Frontend(settings, db, users).app)
