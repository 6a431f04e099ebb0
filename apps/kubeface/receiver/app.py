"""``kubeface receiver``: the HTTP API clients post image paths to (port 8000).

Every new path is written to ``images`` as pending *before* its id is published on NSQ, so
nothing is lost: when nsqd is away the answer is still 202, the rows stay pending and the retry
job publishes them later. A path posted again keeps its id and is not published again.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from typing import Any

import bottle
import sqlalchemy.exc

from kubeface.core import image_queries, metrics, web
from kubeface.core.config import Settings
from kubeface.core.db import Database
from kubeface.core.paths import PathError, canonical
from kubeface.core.queue import Publisher, PublishError
from kubeface.core.statuses import Status
from kubeface.receiver import openapi
from kubeface.receiver.people import PeopleApi

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "5"
MAX_ERRORS_SHOWN = 20


class ApiError(Exception):
    """An answer other than success: HTTP status, a message a person can act on, details."""

    def __init__(self, status: int, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details


def _json_response(status: int, body: dict[str, Any], **headers: str) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(
        json.dumps(body, ensure_ascii=False), status,
        {"Content-Type": "application/json; charset=utf-8", **headers},
    )


def _error_response(exc: ApiError) -> bottle.HTTPResponse:
    body: dict[str, Any] = {"error": exc.message}
    if exc.details:
        body["details"] = exc.details
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if exc.status == 503 else {}
    return _json_response(exc.status, body, **headers)


def read_json_body(environ: dict[str, Any], limit: int) -> Any:
    """The request body parsed as JSON whatever its Content-Type (the article's ``curl -d``
    says form-urlencoded), read by hand with a size limit: Bottle never parses it as a form."""
    length = environ.get("CONTENT_LENGTH") or ""
    if length:
        try:
            declared = int(length)
        except ValueError:
            raise ApiError(400, f"Content-Length {length!r} is not a number") from None
        if declared > limit:
            raise ApiError(413, f"body of {declared} bytes is over the limit of {limit} bytes "
                                "(RECEIVER_MAX_BODY_BYTES): post fewer paths per request")
    raw = environ["wsgi.input"].read(limit + 1)
    if len(raw) > limit:
        raise ApiError(413, f"body is over the limit of {limit} bytes (RECEIVER_MAX_BODY_BYTES):"
                            " post fewer paths per request")
    if not raw.strip():
        raise ApiError(400, 'empty body: send JSON such as {"path": "unknown0001.jpg"}')
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "body is not UTF-8 text: send JSON") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"body is not valid JSON ({exc.msg} at line {exc.lineno} "
                            f"column {exc.colno})") from None
    except RecursionError:
        raise ApiError(400, "body is JSON nested too deeply") from None


def _path_of(item: Any, where: str, root: Any) -> str:
    """The canonical path of one ``{"path": ...}`` object; ApiError(400) saying what is wrong."""
    if not isinstance(item, dict):
        raise ApiError(400, f'{where} must be an object like {{"path": "x.jpg"}}, '
                            f"got {type(item).__name__}")
    if "path" not in item:
        raise ApiError(400, f'{where} has no "path" field')
    try:
        stored = canonical(item["path"], root)
        stored.encode("utf-8")  # a lone surrogate ("\ud800") parses as JSON but is not text
    except PathError as exc:
        raise ApiError(400, f"{where}: {exc}") from None
    except UnicodeEncodeError:
        raise ApiError(400, f"{where}: path is not valid Unicode text") from None
    return stored


def parse_single(body: Any, settings: Settings) -> str:
    if not isinstance(body, dict):
        raise ApiError(400, 'body must be a JSON object like {"path": "unknown0001.jpg"}')
    return _path_of(body, "body", settings.unknown_people)


def parse_many(body: Any, settings: Settings) -> list[str]:
    if not isinstance(body, dict) or "paths" not in body:
        raise ApiError(400, 'body must be a JSON object like {"paths": [{"path": "a.jpg"}, ...]}')
    items = body["paths"]
    if not isinstance(items, list):
        raise ApiError(400, f'"paths" must be a list, got {type(items).__name__}')
    if not items:
        raise ApiError(400, '"paths" is empty: give at least one {"path": ...}')
    if len(items) > settings.receiver_max_paths:
        raise ApiError(413, f"{len(items)} paths is over the limit of "
                            f"{settings.receiver_max_paths} per request (RECEIVER_MAX_PATHS): "
                            "split them into several posts")
    paths, errors = [], []
    for i, item in enumerate(items):
        try:
            paths.append(_path_of(item, f"paths[{i}]", settings.unknown_people))
        except ApiError as exc:
            errors.append(exc.message)
    if errors:
        shown = errors[:MAX_ERRORS_SHOWN]
        more = f" (showing {len(shown)})" if len(errors) > len(shown) else ""
        raise ApiError(400, f"{len(errors)} of {len(items)} paths are invalid{more}; "
                            "nothing was stored", shown)
    return paths


class Receiver:
    """The receiver's parts and its routes; ``app`` is the WSGI application."""

    def __init__(self, settings: Settings, db: Database, publisher: Publisher) -> None:
        self.settings, self.db, self.publisher = settings, db, publisher
        self.openapi = openapi.document(settings)
        self.app = bottle.Bottle(catchall=True)
        self.app.default_error_handler = self._bottle_error  # type: ignore[method-assign]
        route = self.app.route
        route("/image/post", "POST", self._handler(self.post_image))
        route("/images/post", "POST", self._handler(self.post_images))
        route("/images/<image_id>", "GET", self._handler(self.get_image))
        route("/images", "GET", self._handler(self.list_images))
        route("/healthz", "GET", self.healthz)
        route("/readyz", "GET", self.readyz)
        PeopleApi(settings, db, self._publish).register(self.app)
        route("/openapi.json", "GET", lambda: _json_response(200, self.openapi))

    # -- plumbing ---------------------------------------------------------------------------

    def _handler(self, func: Callable[..., bottle.HTTPResponse]) -> Callable[..., Any]:
        """Turns ApiError into its JSON answer and "database away" into 503."""
        def handle(**kwargs: Any) -> bottle.HTTPResponse:
            try:
                return func(**kwargs)
            except ApiError as exc:
                return _error_response(exc)
            except image_queries.DATABASE_AWAY as exc:
                log.warning("database unavailable: %s", getattr(exc, "orig", exc))
                what = ("busy (every connection in use)"
                        if isinstance(exc, sqlalchemy.exc.TimeoutError) else "unreachable")
                return _error_response(ApiError(
                    503, f"the database is {what}: nothing was stored, try again later"))
        return handle

    def _bottle_error(self, error: bottle.HTTPError) -> str:
        """Bottle's own errors (404, 405, 500) as JSON rather than its HTML page."""
        if error.status_code >= 500:
            log.error("internal error on %s %s: %s", bottle.request.method,
                      bottle.request.path, error.exception, exc_info=error.exception)
            message = "internal error: the receiver's log has the details"
        elif error.status_code == 404:
            message = f"no such endpoint {bottle.request.path!r}: see /openapi.json"
        elif error.status_code == 405:
            message = (f"method {bottle.request.method} is not allowed here "
                       f"(allowed: {error.headers.get('Allow', '?')})")
        else:
            message = str(error.body)
        bottle.response.content_type = "application/json; charset=utf-8"
        return json.dumps({"error": message})

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
        return read_json_body(bottle.request.environ, self.settings.receiver_max_body_bytes)

    def post_image(self) -> bottle.HTTPResponse:
        path = parse_single(self._body(), self.settings)
        (posted,) = image_queries.insert_pending(self.db, [path])
        if posted.new:
            published, message = self._publish([posted.id])
        else:
            published, message = True, "already posted: this is its existing id, not queued again"
        return _json_response(202 if posted.new else 200, {
            "id": posted.id, "path": posted.path, "status": posted.status.value,
            "already_posted": not posted.new, "published": published, "message": message,
        })

    def post_images(self) -> bottle.HTTPResponse:
        paths = parse_many(self._body(), self.settings)
        posted = image_queries.insert_pending(self.db, paths)
        new_ids = [p.id for p in posted if p.new]
        published, message = self._publish(new_ids)
        return _json_response(202 if new_ids else 200, {
            "images": [{"id": p.id, "path": p.path, "status": p.status.value,
                        "already_posted": not p.new} for p in posted],
            "accepted": len(new_ids), "already_posted": len(posted) - len(new_ids),
            "published": published, "message": message,
        })

    def get_image(self, image_id: str) -> bottle.HTTPResponse:
        if not image_id.isascii() or not image_id.isdigit():
            raise ApiError(400, f"image id must be a positive integer, got {image_id!r}")
        image = image_queries.get_image(self.db, int(image_id))
        if image is None:
            raise ApiError(404, f"no image with id {image_id}")
        return _json_response(200, image.as_json())

    def list_images(self) -> bottle.HTTPResponse:
        query = bottle.request.query
        status = None
        if raw := query.get("status"):
            try:
                status = Status(raw)
            except ValueError:
                raise ApiError(400, f"status must be one of {', '.join(Status)}, "
                                    f"got {raw!r}") from None
        limit = _int_param(query, "limit", 100, 1, image_queries.MAX_PAGE)
        offset = _int_param(query, "offset", 0, 0, 10**9)
        images = image_queries.list_images(self.db, status=status, limit=limit, offset=offset)
        return _json_response(200, {"images": [i.as_json() for i in images],
                                    "limit": limit, "offset": offset})

    def healthz(self) -> bottle.HTTPResponse:
        return _json_response(200, {"status": "ok"})

    def readyz(self) -> bottle.HTTPResponse:
        checks = {"database": "ok", "nsqd": "ok"}
        try:
            self.db.ping()
        except image_queries.DATABASE_AWAY as exc:
            checks["database"] = f"unreachable ({type(exc).__name__})"
        try:
            self.publisher.ping()
        except PublishError as exc:
            checks["nsqd"] = str(exc)
        ready = all(v == "ok" for v in checks.values())
        return _json_response(200 if ready else 503,
                              {"status": "ok" if ready else "unavailable", "checks": checks},
                              **({} if ready else {"Retry-After": RETRY_AFTER_SECONDS}))


def _int_param(query: bottle.FormsDict, name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(400, f"{name} must be an integer from {low} to {high}, got {raw!r}")
    return int(raw)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=16, help="worker threads (default 16)")


def main(settings: Settings, args: argparse.Namespace) -> int:
    # Every worker thread may need a database connection and an nsqd connection at once.
    db = Database(settings, threads=args.threads)
    publisher = Publisher(settings.nsqd_http_address, threads=args.threads)
    receiver = Receiver(settings, db, publisher)
    try:
        return web.serve(metrics.instrument(receiver.app, "receiver", db),
                         settings.bind_address, settings.receiver_port,
                         "receiver", threads=args.threads)
    finally:
        db.close()
