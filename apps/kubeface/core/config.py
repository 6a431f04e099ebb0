"""Configuration from environment variables, with a ``.env`` file for development.

Every variable kube-face reads is declared once in :data:`VARIABLES` (name, parser, default,
meaning); the README's configuration table is checked against it. A missing or malformed value
raises :class:`ConfigError` whose message names the variable and what it expected, and the
``kubeface`` command turns that into one line on stderr and exit code 2.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

ENV_FILE_VARIABLE = "KUBEFACE_ENV_FILE"


class ConfigError(Exception):
    """A configuration value is missing or malformed; the message names the variable."""


# --- parsers: each takes the raw string and returns the value or raises ValueError(expected) ---


def _text(raw: str) -> str:
    if not raw.strip():
        raise ValueError("a non-empty string")
    return raw.strip()


def _number_range(kind: type[int] | type[float], low: float, high: float) -> Callable[[str], Any]:
    expected = f"{'an integer' if kind is int else 'a number'} from {low} to {high}"

    def parse(raw: str) -> Any:
        try:
            value = kind(raw.strip())
        except ValueError:
            raise ValueError(expected) from None
        if not low <= value <= high:
            raise ValueError(expected)
        return value

    return parse


def _int_range(low: int, high: int) -> Callable[[str], int]:
    return _number_range(int, low, high)


def _float_range(low: float, high: float) -> Callable[[str], float]:
    return _number_range(float, low, high)


_port = _int_range(1, 65535)


def _host_port(raw: str) -> str:
    """``host:port`` (the form gRPC and NSQ take); the host may be a name or an address."""
    host, sep, port = raw.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("host:port, e.g. 127.0.0.1:4161")
    return raw.strip()


def _user_password(raw: str) -> tuple[str, str]:
    user, sep, password = raw.partition(":")
    if not sep or not user.strip():
        raise ValueError("user:password")
    return user.strip(), password


def _path(raw: str) -> Path:
    return Path(_text(raw)).expanduser()


def _optional_path(raw: str) -> Path | None:
    return _path(raw) if raw.strip() else None


def _log_format(raw: str) -> str:
    fmt = raw.strip().lower()
    if fmt not in {"text", "json"}:
        raise ValueError("text or json")
    return fmt


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("one of DEBUG, INFO, WARNING, ERROR")
    return level


SCOPES = ("read", "write")
# RFC 6750's b64token: what a bearer token may hold in an Authorization header.
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=")
USER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-")
MIN_TOKEN_LENGTH = 16
MIN_SESSION_KEY_LENGTH = 32


def _switch(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in {"on", "off"}:
        raise ValueError("on or off")
    return value == "on"


def _tokens(raw: str) -> tuple[tuple[str, str], ...]:
    """``scope:token,scope:token``: the bearer tokens the receiver accepts."""
    expected = (f"comma-separated scope:token entries (scope read or write; a token of at "
                f"least {MIN_TOKEN_LENGTH} characters from A-Z a-z 0-9 - . _ ~ + / =)")
    tokens = []
    for entry in filter(None, (e.strip() for e in raw.split(","))):
        scope, sep, token = entry.partition(":")
        if (not sep or scope not in SCOPES or len(token) < MIN_TOKEN_LENGTH
                or not set(token) <= _TOKEN_CHARS):
            raise ValueError(expected)
        tokens.append((scope, token))
    return tuple(tokens)


def _users(raw: str) -> tuple[tuple[str, str], ...]:
    """``name:hash`` entries separated by spaces or new lines (an argon2 hash holds commas)."""
    users: dict[str, str] = {}
    for entry in raw.split():
        name, sep, hashed = entry.partition(":")
        if (not sep or not 1 <= len(name) <= 64 or not set(name) <= USER_CHARS
                or not hashed.startswith("$argon2") or name in users):
            raise ValueError("name:argon2-hash entries separated by spaces (distinct names "
                             "of A-Z a-z 0-9 . _ @ -; hashes from kubeface hash-password)")
        users[name] = hashed
    return tuple(users.items())


def _session_key(raw: str) -> str | None:
    if not raw.strip():
        return None  # empty as unset: the frontend then says it is missing
    if len(raw.strip()) < MIN_SESSION_KEY_LENGTH:
        raise ValueError(f"a random string of at least {MIN_SESSION_KEY_LENGTH} characters")
    return raw.strip()


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, how to read it, its default and what it is for."""

    name: str
    attr: str
    parse: Callable[[str], Any]
    default: str | None
    help: str
    secret: bool = False


VARIABLES: tuple[Variable, ...] = (
    # The article's names.
    Variable("MYSQL_CONNECTION", "mysql_host", _text, "127.0.0.1", "MySQL/MariaDB host"),
    Variable("MYSQL_PORT", "mysql_port", _port, "3306", "MySQL port"),
    Variable("MYSQL_DBNAME", "mysql_dbname", _text, "kube", "database name"),
    Variable("MYSQL_USERPASSWORD", "mysql_userpassword", _user_password, None,
             "user:password of the services' database user (a Secret; no default)",
             secret=True),
    Variable("NSQ_LOOKUP_ADDRESS", "nsq_lookup_address", _host_port, "127.0.0.1:4161",
             "nsqlookupd HTTP address the processor discovers nsqd through"),
    Variable("NSQD_HTTP_ADDRESS", "nsqd_http_address", _host_port, "127.0.0.1:4151",
             "nsqd HTTP address the receiver and retry job publish to (its HTTPS address "
             "with NSQ_TLS_*)"),
    Variable("NSQ_TLS_CA_FILE", "nsq_tls_ca_file", _optional_path, None,
             "PEM CA that signed nsqd's certificate; with NSQ_TLS_CERT_FILE and "
             "NSQ_TLS_KEY_FILE every nsqd connection is TLS with that client certificate "
             "(all three or none: plain)"),
    Variable("NSQ_TLS_CERT_FILE", "nsq_tls_cert_file", _optional_path, None,
             "PEM client certificate the services show nsqd"),
    Variable("NSQ_TLS_KEY_FILE", "nsq_tls_key_file", _optional_path, None,
             "PEM private key of NSQ_TLS_CERT_FILE"),
    Variable("GRPC_ADDRESS", "grpc_address", _host_port, "127.0.0.1:50051",
             "face-recognition service address (processor)"),
    Variable("KNOWN_PEOPLE", "known_people", _path, "known_people",
             "folder of known people's images (+ optional people.csv)"),
    Variable("UNKNOWN_PEOPLE", "unknown_people", _path, "unknown_people",
             "root of the images clients post; nothing outside it is opened"),
    # Listening ports.
    Variable("RECEIVER_PORT", "receiver_port", _port, "8000", "receiver HTTP port"),
    Variable("FRONTEND_PORT", "frontend_port", _port, "8081", "frontend HTTP port"),
    Variable("GRPC_PORT", "grpc_port", _port, "50051", "face service listening port"),
    Variable("BIND_ADDRESS", "bind_address", _text, "127.0.0.1",
             "address the servers listen on (0.0.0.0 in containers)"),
    Variable("TLS_CERT_FILE", "tls_cert_file", _path, None,
             "PEM certificate (chain) the receiver and frontend serve HTTPS with; unset: HTTP"),
    Variable("TLS_KEY_FILE", "tls_key_file", _path, None,
             "PEM private key of TLS_CERT_FILE (both or neither)"),
    Variable("LOG_LEVEL", "log_level", _log_level, "INFO", "DEBUG, INFO, WARNING or ERROR"),
    Variable("LOG_FORMAT", "log_format", _log_format, "text",
             "text (for people) or json (one object per line, for log pipelines)"),
    Variable("PROCESSOR_METRICS_PORT", "processor_metrics_port", _port, "8082",
             "processor's /metrics, /healthz and /readyz port"),
    Variable("FACE_METRICS_PORT", "face_metrics_port", _port, "8083",
             "face service's /metrics, /healthz and /readyz port"),
    Variable("DB_POOL_SIZE", "db_pool_size", _int_range(1, 100), "5",
             "database connections kept per process"),
    # Face recognition.
    Variable("FACE_TOLERANCE", "face_tolerance", _float_range(0.0, 1.0), "0.6",
             "largest face distance that counts as a match (the library's default)"),
    Variable("FACE_MAX_SIDE", "face_max_side", _int_range(0, 20000), "800",
             "longest image side before detection, in pixels (0: never scale)"),
    Variable("FACE_MAX_PIXELS", "face_max_pixels", _int_range(1, 1_000_000_000), "40000000",
             "images with more pixels are refused before decoding"),
    Variable("FACE_WORKERS", "face_workers", _int_range(0, 256), "0",
             "recognition worker processes (0: one per CPU)"),
    Variable("FACE_ADMIN_SOCKET", "face_admin_socket", _path, None,
             "Unix socket the face service also listens on; when set, Reload is answered only "
             "there (its folder's permissions decide who may call it)"),
    Variable("FACE_CACHE_DIR", "face_cache_dir", _path, "~/.cache/kube-face/encodings",
             "known-face encodings cached by file content, so a restart does not re-encode"),
    # Image processor.
    Variable("PROCESSOR_MAX_IN_FLIGHT", "processor_max_in_flight", _int_range(1, 1000), "4",
             "messages a processor works on at once"),
    Variable("PROCESSOR_MAX_ATTEMPTS", "processor_max_attempts", _int_range(1, 1000), "10",
             "transient failures before an image is failed"),
    Variable("PROCESSOR_LEASE_SECONDS", "processor_lease_seconds", _int_range(5, 86400), "120",
             "how long a claim lasts before another worker may take the image"),
    Variable("PROCESSOR_REQUEUE_SECONDS", "processor_requeue_seconds", _float_range(0.0, 3600),
             "2", "first requeue delay after transient trouble; doubles with each delivery"),
    Variable("PROCESSOR_MAX_REQUEUE_SECONDS", "processor_max_requeue_seconds",
             _float_range(0.0, 3600), "120", "cap of the requeue delay"),
    Variable("PROCESSOR_LOOKUPD_POLL_SECONDS", "processor_lookupd_poll_seconds",
             _int_range(1, 3600), "15", "how often the processor asks nsqlookupd for nsqd nodes"),
    Variable("GRPC_TIMEOUT_SECONDS", "grpc_timeout_seconds", _float_range(0.1, 3600), "30",
             "deadline of one Identify call"),
    Variable("BREAKER_FAIL_MAX", "breaker_fail_max", _int_range(1, 1000), "5",
             "consecutive face-service failures that open the circuit breaker"),
    Variable("BREAKER_RESET_SECONDS", "breaker_reset_seconds", _float_range(0.1, 3600), "10",
             "first open period of the breaker"),
    Variable("BREAKER_MAX_RESET_SECONDS", "breaker_max_reset_seconds", _float_range(0.1, 86400),
             "300", "cap of the open period, which doubles while the service stays down"),
    # Receiver.
    Variable("RECEIVER_MAX_BODY_BYTES", "receiver_max_body_bytes", _int_range(1, 1 << 30),
             "1048576", "largest request body accepted"),
    Variable("RECEIVER_MAX_PATHS", "receiver_max_paths", _int_range(1, 1_000_000), "5000",
             "most paths in one bulk post"),
    Variable("API_TOKENS", "api_tokens", _tokens, None,
             "bearer tokens of the receiver API: comma-separated scope:token, scope read or "
             "write (write implies read)", secret=True),
    Variable("API_AUTH", "api_auth", _switch, "on",
             "off serves the receiver API without tokens (it logs a warning)"),
    # Frontend.
    Variable("FRONTEND_PAGE_SIZE", "frontend_page_size", _int_range(1, 1000), "50",
             "images per page of the Persons of Interest table"),
    Variable("FRONTEND_REFRESH_SECONDS", "frontend_refresh_seconds", _int_range(1, 3600), "5",
             "how often the table reloads itself while images are pending or processing"),
    Variable("FRONTEND_USERS", "frontend_users", _users, None,
             "who may log in to the frontend: name:argon2-hash entries separated by spaces "
             "(kubeface hash-password makes a hash)", secret=True),
    Variable("FRONTEND_SESSION_KEY", "frontend_session_key", _session_key, None,
             "key that signs the frontend's session cookies (32+ random characters)",
             secret=True),
    Variable("FRONTEND_SESSION_HOURS", "frontend_session_hours", _int_range(1, 24 * 30), "12",
             "how long a frontend login lasts"),
    Variable("FRONTEND_AUTH", "frontend_auth", _switch, "on",
             "off serves the frontend without a login (it logs a warning)"),
    # Retry job.
    Variable("RETRY_PENDING_AFTER_SECONDS", "retry_pending_after_seconds",
             _int_range(1, 86400 * 30), "300",
             "a pending image older than this is published again"),
    Variable("RETRY_MAX_RETRIES", "retry_max_retries", _int_range(0, 1000), "3",
             "times the retry job revives an image that gave up after transient errors"),
)


@dataclass(frozen=True)
class Settings:
    """All of kube-face's configuration, parsed; build it with :func:`load`.

    One field per entry of :data:`VARIABLES` (``load`` fails at once if the two disagree).
    """

    mysql_host: str
    mysql_port: int
    mysql_dbname: str
    mysql_userpassword: tuple[str, str] | None = field(repr=False)
    nsq_lookup_address: str
    nsqd_http_address: str
    nsq_tls_ca_file: Path | None
    nsq_tls_cert_file: Path | None
    nsq_tls_key_file: Path | None
    grpc_address: str
    known_people: Path
    unknown_people: Path
    receiver_port: int
    frontend_port: int
    grpc_port: int
    bind_address: str
    tls_cert_file: Path | None
    tls_key_file: Path | None
    log_level: str
    log_format: str
    processor_metrics_port: int
    face_metrics_port: int
    db_pool_size: int
    face_tolerance: float
    face_max_side: int
    face_max_pixels: int
    face_workers: int
    face_admin_socket: Path | None
    face_cache_dir: Path
    processor_max_in_flight: int
    processor_max_attempts: int
    processor_lease_seconds: int
    processor_requeue_seconds: float
    processor_max_requeue_seconds: float
    processor_lookupd_poll_seconds: int
    grpc_timeout_seconds: float
    breaker_fail_max: int
    breaker_reset_seconds: float
    breaker_max_reset_seconds: float
    receiver_max_body_bytes: int
    receiver_max_paths: int
    api_tokens: tuple[tuple[str, str], ...] | None = field(repr=False)
    api_auth: bool
    frontend_page_size: int
    frontend_refresh_seconds: int
    frontend_users: tuple[tuple[str, str], ...] | None = field(repr=False)
    frontend_session_key: str | None = field(repr=False)
    frontend_session_hours: int
    frontend_auth: bool
    retry_pending_after_seconds: int
    retry_max_retries: int

    @property
    def mysql_user(self) -> str:
        return self._credentials()[0]

    @property
    def mysql_password(self) -> str:
        return self._credentials()[1]

    @property
    def tls_files(self) -> tuple[Path, Path] | None:
        """(certificate, key) when the web servers speak HTTPS; None for plain HTTP."""
        if self.tls_cert_file is None and self.tls_key_file is None:
            return None
        if self.tls_cert_file is None or self.tls_key_file is None:
            given, missing = (("TLS_KEY_FILE", "TLS_CERT_FILE") if self.tls_cert_file is None
                              else ("TLS_CERT_FILE", "TLS_KEY_FILE"))
            raise ConfigError(f"{missing} is not set but {given} is: HTTPS needs both the "
                              "certificate and its key (or neither, for plain HTTP)")
        return self.tls_cert_file, self.tls_key_file

    @property
    def nsq_tls_files(self) -> tuple[Path, Path, Path] | None:
        """(CA, client certificate, key) when nsqd is spoken to over TLS; None for plain."""
        ca, cert, key = self.nsq_tls_ca_file, self.nsq_tls_cert_file, self.nsq_tls_key_file
        if ca is None and cert is None and key is None:
            return None
        if ca is None or cert is None or key is None:
            missing = [name for name, path in (("NSQ_TLS_CA_FILE", ca),
                                               ("NSQ_TLS_CERT_FILE", cert),
                                               ("NSQ_TLS_KEY_FILE", key)) if path is None]
            raise ConfigError(f"{', '.join(missing)} not set but the other NSQ_TLS_* are: TLS "
                              "to nsqd needs the CA, the client certificate and its key (or "
                              "none of them, for plain TCP and HTTP)")
        return ca, cert, key

    def _credentials(self) -> tuple[str, str]:
        if self.mysql_userpassword is None:
            raise ConfigError("MYSQL_USERPASSWORD is not set: expected user:password")
        return self.mysql_userpassword


def _environment(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    """The process environment over the ``.env`` file (the file only fills gaps)."""
    if environ is not None:
        return environ
    env_file = Path(os.environ.get(ENV_FILE_VARIABLE, ".env"))
    merged: dict[str, str] = {}
    if env_file.is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ)
    return merged


def load(
    environ: Mapping[str, str] | None = None, required: Iterable[str] = ()
) -> Settings:
    """Read every variable; ``required`` names those that have no default but must be set."""
    env = _environment(environ)
    required = set(required)
    if unknown := required - {v.name for v in VARIABLES}:
        raise ValueError(f"no such variables: {sorted(unknown)}")
    values: dict[str, Any] = {}
    for var in VARIABLES:
        raw = env.get(var.name)
        if raw is None or (raw == "" and var.default is not None):
            raw = var.default
        if raw is None:
            if var.name in required:
                raise ConfigError(f"{var.name} is not set: expected {var.help}")
            values[var.attr] = None
            continue
        try:
            values[var.attr] = var.parse(raw)
        except ValueError as exc:
            shown = "***" if var.secret else repr(raw)
            raise ConfigError(f"{var.name} is malformed: expected {exc}, got {shown}") from None
    return Settings(**values)
