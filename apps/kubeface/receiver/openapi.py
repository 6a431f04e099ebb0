"""The receiver's OpenAPI 3 document, served at ``GET /openapi.json`` and fuzzed by the tests."""

from __future__ import annotations

from typing import Any

import kubeface
from kubeface.core.auth import OPEN_PATHS, READ, SAFE_METHODS, WRITE
from kubeface.core.config import Settings
from kubeface.core.image_queries import MAX_ID, MAX_OFFSET, MAX_PAGE
from kubeface.core.messages import TOPIC
from kubeface.core.paths import MAX_PATH_LENGTH
from kubeface.core.statuses import Status
from kubeface.receiver.people import extend_openapi


def _json(schema: dict[str, Any], description: str,
          headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


_ERROR = {"$ref": "#/components/schemas/Error"}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "string"},
                                "description": "seconds to wait before trying again"}}


def _errors(*codes: int) -> dict[str, Any]:
    texts = {
        400: "the request is malformed: the message says what to fix",
        404: "no such image",
        408: "the body did not arrive within the server's time limit (a stalled client, or a "
             "body shorter than its Content-Length); the connection is closed",
        413: "the body or the list of paths is over the configured limit",
        503: "the database (or, for /readyz, nsqd) is unreachable: try again later",
    }
    return {str(c): _json(_ERROR, texts[c], _RETRY_AFTER if c == 503 else None) for c in codes}


def document(settings: Settings) -> dict[str, Any]:
    statuses = [s.value for s in Status]
    path = {"type": "string", "minLength": 1, "maxLength": MAX_PATH_LENGTH,
            "description": "image path relative to the unknown-images root (UNKNOWN_PEOPLE), "
                           "or absolute inside it; '..' is refused"}
    post_body = {
        "required": True,
        "description": "JSON. Any Content-Type is accepted with a JSON body (the article's "
                       "`curl -d` sends application/x-www-form-urlencoded); at most "
                       f"{settings.receiver_max_body_bytes} bytes.",
    }
    return _with_security(extend_openapi({
        "openapi": "3.0.3",
        "info": {
            "title": "kube-face receiver",
            "version": kubeface.__version__,
            "description": "Accepts paths of images to recognise. Each new path is stored as a "
                           f"pending image and its id published on NSQ (topic {TOPIC}).",
        },
        "paths": {
            "/image/post": {"post": {
                "operationId": "postImage",
                "summary": "Post one image path (v1.0)",
                "requestBody": {**post_body, "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/PathItem"}}}},
                "responses": {
                    "202": _json({"$ref": "#/components/schemas/Posted"},
                                 "stored as pending (and published unless `published` is false)"),
                    "200": _json({"$ref": "#/components/schemas/Posted"},
                                 "already posted before: its existing id and status"),
                    **_errors(400, 408, 413, 503),
                },
            }},
            "/images/post": {"post": {
                "operationId": "postImages",
                "summary": "Post many image paths in one request (v1.1)",
                "requestBody": {**post_body, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["paths"],
                    "properties": {"paths": {
                        "type": "array", "minItems": 1, "maxItems": settings.receiver_max_paths,
                        "items": {"$ref": "#/components/schemas/PathItem"}}},
                }}}},
                "responses": {
                    "202": _json({"$ref": "#/components/schemas/PostedMany"},
                                 "stored in one transaction, new ones published in one mpub"),
                    "200": _json({"$ref": "#/components/schemas/PostedMany"},
                                 "every path was already posted"),
                    **_errors(400, 408, 413, 503),
                },
            }},
            "/images/{id}": {"get": {
                "operationId": "getImage",
                "summary": "One image: status, person, faces, error",
                "parameters": [{"name": "id", "in": "path", "required": True,
                                "schema": {"type": "integer", "minimum": 1,
                                           "maximum": MAX_ID}}],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Image"}, "the image"),
                    **_errors(400, 404, 503),
                },
            }},
            "/images": {"get": {
                "operationId": "listImages",
                "summary": "Images, newest first",
                "parameters": [
                    {"name": "status", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": statuses}},
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE,
                                "default": 100}},
                    {"name": "offset", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET,
                                "default": 0}},
                ],
                "responses": {
                    "200": _json({"type": "object",
                                  "required": ["images", "limit", "offset"],
                                  "properties": {
                                      "images": {"type": "array", "items": {
                                          "$ref": "#/components/schemas/Image"}},
                                      "limit": {"type": "integer"},
                                      "offset": {"type": "integer"}}}, "a page of images"),
                    **_errors(400, 503),
                },
            }},
            "/healthz": {"get": {
                "operationId": "healthz", "summary": "Liveness: the process serves",
                "responses": {"200": _json({"$ref": "#/components/schemas/Health"}, "alive")},
            }},
            "/readyz": {"get": {
                "operationId": "readyz",
                "summary": "Readiness: the database and nsqd answer",
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Health"}, "ready"),
                    "503": _json({"$ref": "#/components/schemas/Health"},
                                 "not ready: `checks` says which part is away", _RETRY_AFTER),
                },
            }},
            "/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3 document")},
            }},
        },
        "components": {"schemas": {
            "PathItem": {"type": "object", "required": ["path"], "properties": {"path": path}},
            "Error": {"type": "object", "required": ["error"], "properties": {
                "error": {"type": "string"},
                "details": {"type": "array", "items": {"type": "string"}}}},
            "PostedImage": {"type": "object",
                            "required": ["id", "path", "status", "already_posted"],
                            "properties": {
                                "id": {"type": "integer", "minimum": 1},
                                "path": {"type": "string", "description": "as stored"},
                                "status": {"type": "string", "enum": statuses},
                                "already_posted": {"type": "boolean"}}},
            "Posted": {"allOf": [{"$ref": "#/components/schemas/PostedImage"}, {
                "type": "object", "required": ["published", "message"], "properties": {
                    "published": {"type": "boolean"}, "message": {"type": "string"}}}]},
            "PostedMany": {"type": "object",
                           "required": ["images", "accepted", "already_posted", "published",
                                        "message"],
                           "properties": {
                               "images": {"type": "array", "items": {
                                   "$ref": "#/components/schemas/PostedImage"}},
                               "accepted": {"type": "integer", "minimum": 0},
                               "already_posted": {"type": "integer", "minimum": 0},
                               "published": {"type": "boolean"},
                               "message": {"type": "string"}}},
            "Face": {"type": "object", "properties": {
                "index": {"type": "integer"}, "top": {"type": "integer"},
                "right": {"type": "integer"}, "bottom": {"type": "integer"},
                "left": {"type": "integer"},
                "person": {"type": "string", "nullable": True},
                "known_image": {"type": "string", "nullable": True},
                "distance": {"type": "number", "nullable": True}}},
            "Image": {"type": "object",
                      "required": ["id", "path", "status", "person", "faces"],
                      "properties": {
                          "id": {"type": "integer"}, "path": {"type": "string"},
                          "status": {"type": "string", "enum": statuses},
                          "person": {"type": "string", "nullable": True},
                          "face_count": {"type": "integer", "nullable": True},
                          "attempts": {"type": "integer"},
                          "error": {"type": "string", "nullable": True},
                          "created_at": {"type": "string",
                                         "description": "ISO 8601, the database's time"},
                          "updated_at": {"type": "string",
                                         "description": "ISO 8601, the database's time"},
                          "faces": {"type": "array",
                                    "items": {"$ref": "#/components/schemas/Face"}}}},
            "Health": {"type": "object", "required": ["status"], "properties": {
                "status": {"type": "string", "enum": ["ok", "unavailable"]},
                "checks": {"type": "object",
                           "additionalProperties": {"type": "string"}}}},
        }},
    }))


def _with_security(document: dict[str, Any]) -> dict[str, Any]:
    """Every operation but the open ones needs a bearer token: a read token for GET, a write
    token for the rest; 401 and 403 are documented on each."""
    document["components"]["securitySchemes"] = {"bearerAuth": {
        "type": "http", "scheme": "bearer",
        "description": "a token of API_TOKENS: `read` tokens may GET, `write` tokens may "
                       "also post, upload and change people (README: Security)"}}
    document["security"] = [{"bearerAuth": []}]
    challenge = {"WWW-Authenticate": {"schema": {"type": "string"},
                                      "description": 'Bearer realm="kube-face", ...'}}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path in OPEN_PATHS:
                operation["security"] = []
                continue
            scope = READ if method.upper() in SAFE_METHODS else WRITE
            operation["description"] = (operation.get("description", "") +
                                        f" Needs a {scope} token.").strip()
            operation["responses"].setdefault("401", _json(
                _ERROR, "no token, a malformed header, a token in the URL or an unknown "
                        "token", challenge))
            if scope == WRITE:
                operation["responses"].setdefault("403", _json(
                    _ERROR, "a read token: this needs a write token", challenge))
    return document
