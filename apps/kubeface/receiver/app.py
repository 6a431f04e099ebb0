"""``kubeface receiver``: the HTTP API clients post image paths to (port 8000).

Every new path is written to ``images`` as pending *before* its id is published on NSQ, so
nothing is lost: when nsqd is away the answer is still 202, the rows stay pending and the retry
job publishes them later. A path posted again keeps its id and is not published again.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import bottle

from kubeface.core import auth, image_queries, metrics, web
from kubeface.core.config import Settings
from kubeface.core.db import Database
from kubeface.core.paths import PathError, canonical
from kubeface.core.queue import Publisher, PublishError
from kubeface.core.statuses import Status
from kubeface.core.web import HttpError, guarded, int_param, json_response
from kubeface.receiver import openapi
from kubeface.receiver.people import PeopleApi

log = logging.getLogger(__name__)

MAX_ERRORS_SHOWN = 20


def _path_of(item: Any, where: str, root: Any) -> str:
    """The canonical path of one ``{"path": ...}`` object; HttpError(400) saying what is wrong."""
    if not isinstance(item, dict):
        raise HttpError(400, f'{where} must be an object like {{"path": "x.jpg"}}, '
                            f"got {type(item).__name__}")
    if "path" not in item:
        raise HttpError(400, f'{where} has no "path" field')
    try:
        stored = canonical(item["path"], root)
        stored.encode("utf-8")  # a lone surrogate ("\ud800") parses as JSON but is not text
    except PathError as exc:
        raise HttpError(400, f"{where}: {exc}") from None
    except UnicodeEncodeError:
        raise HttpError(400, f"{where}: path is not valid Unicode text") from None
    return stored


def parse_single(body: Any, settings: Settings) -> str:
    if not isinstance(body, dict):
        raise HttpError(400, 'body must be a JSON object like {"path": "unknown0001.jpg"}')
    return _path_of(body, "body", settings.unknown_people)


def parse_many(body: Any, settings: Settings) -> list[str]:
    if not isinstance(body, dict) or "paths" not in body:
        raise HttpError(400, 'body must be a JSON object like {"paths": [{"path": "a.jpg"}, ...]}')
    items = body["paths"]
    if not isinstance(items, list):
        raise HttpError(400, f'"paths" must be a list, got {type(items).__name__}')
    if not items:
        raise HttpError(400, '"paths" is empty: give at least one {"path": ...}')
    if len(items) > settings.receiver_max_paths:
        raise HttpError(413, f"{len(items)} paths is over the limit of "
                            f"{settings.receiver_max_paths} per request (RECEIVER_MAX_PATHS): "
                            "split them into several posts")
    paths, errors = [], []
    for i, item in enumerate(items):
        try:
            paths.append(_path_of(item, f"paths[{i}]", settings.unknown_people))
        except HttpError as exc:
            errors.append(exc.message)
    if errors:
        shown = errors[:MAX_ERRORS_SHOWN]
        more = f" (showing {len(shown)})" if len(errors) > len(shown) else ""
        raise HttpError(400, f"{len(errors)} of {len(items)} paths are invalid{more}; "
                            "nothing was stored", shown)
    return paths


class Receiver:
    """The receiver's parts and its routes; ``app`` is the WSGI application."""

    def __init__(self, settings: Settings, db: Database, publisher: Publisher) -> None:
        self.settings, self.db, self.publisher = settings, db, publisher
        self.openapi = openapi.document(settings)
        self.app = bottle.Bottle(catchall=True)
        self.app.default_error_handler = web.error_handler(  # type: ignore[method-assign]
            web.json_error, "receiver", ": see /openapi.json")
        route = self.app.route
        route("/image/post", "POST", guarded(self.post_image, web.json_error))
        route("/images/post", "POST", guarded(self.post_images, web.json_error))
        route("/images/<image_id>", "GET", guarded(self.get_image, web.json_error))
        route("/images", "GET", guarded(self.list_images, web.json_error))
        route("/healthz", "GET", self.healthz)
        route("/readyz", "GET", self.readyz)
        PeopleApi(settings, db, self._publish).register(self.app)
        route("/openapi.json", "GET", lambda: json_response(200, self.openapi))

    def _publish(self, ids: list[int]) -> tuple[bool, str]:
        metrics.http().posted(len(ids))  # only new images are published
        if not ids:
            return True, "nothing new to publish"
        try:
            if len(ids) == 1:
                self.publisher.publish(ids[0])
            else:
                self.publisher.publish_many(ids)
        except PublishError as exc:
            log.warning("publish of %d image ids failed, left pending for the retry job: %s",
                        len(ids), exc)
            return False, (
                "stored as pending, but the queue (nsqd) could not be reached: the retry job "
                f"will publish them (pending images older than "
                f"{self.settings.retry_pending_after_seconds}s are published again)")
        return True, f"queued {len(ids)} image(s) for recognition"

    # -- endpoints --------------------------------------------------------------------------

    def _body(self) -> Any:
        return web.read_json_body(bottle.request.environ, self.settings.receiver_max_body_bytes,
                                  " (RECEIVER_MAX_BODY_BYTES): post fewer paths per request")

    def post_image(self) -> bottle.HTTPResponse:
        path = parse_single(self._body(), self.settings)
        (posted,) = image_queries.insert_pending(self.db, [path])
        if posted.new:
            published, message = self._publish([posted.id])
        else:
            published, message = True, "already posted: this is its existing id, not queued again"
        return json_response(202 if posted.new else 200, {
            **posted.as_json(), "published": published, "message": message})

    def post_images(self) -> bottle.HTTPResponse:
        paths = parse_many(self._body(), self.settings)
        posted = image_queries.insert_pending(self.db, paths)
        new_ids = [p.id for p in posted if p.new]
        return json_response(*image_queries.posted_json(posted, *self._publish(new_ids)))

    def get_image(self, image_id: str) -> bottle.HTTPResponse:
        number = int_param(image_id, "image id", 1, image_queries.MAX_ID)
        image = image_queries.get_image(self.db, number)
        if image is None:
            raise HttpError(404, f"no image with id {number}")
        return json_response(200, image.as_json())

    def list_images(self) -> bottle.HTTPResponse:
        query = bottle.request.query
        status = None
        if raw := query.get("status"):
            try:
                status = Status(raw)
            except ValueError:
                raise HttpError(400, f"status must be one of {', '.join(Status)}, "
                                    f"got {raw!r}") from None
        limit = int_param(query.get("limit"), "limit", 1, image_queries.MAX_PAGE, 100)
        offset = int_param(query.get("offset"), "offset", 0, image_queries.MAX_OFFSET, 0)
        images = image_queries.list_images(self.db, status=status, limit=limit, offset=offset)
        return json_response(200, {"images": [i.as_json() for i in images],
                                    "limit": limit, "offset": offset})

    def healthz(self) -> bottle.HTTPResponse:
        return json_response(200, {"status": "ok"})

    def readyz(self) -> bottle.HTTPResponse:
        return web.readiness({"database": lambda: web.database_check(self.db),
                              "nsqd": self._nsqd_check})

    def _nsqd_check(self) -> str:
        try:
            self.publisher.ping()
        except PublishError as exc:
            return str(exc)
        return web.OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=16, help="worker threads (default 16)")


def main(settings: Settings, args: argparse.Namespace) -> int:
    guard = auth.api_guard(settings)  # before anything starts: no tokens, no API
    # Every worker thread may publish at once: one nsqd connection each.
    publisher = Publisher.for_settings(settings, threads=args.threads)
    return web.serve_on_database(settings, "receiver", settings.receiver_port, args.threads,
                                 lambda db: guard(Receiver(settings, db, publisher).app))
