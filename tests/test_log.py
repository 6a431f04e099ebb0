"""Logs: human-readable by default, one JSON object per line with LOG_FORMAT=json, and never a
password or a database URL's credentials in either."""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path

import pytest

from kubeface.core import log as kflog
from kubeface.core.config import ConfigError, load
from tests.support.mariadb import MariaDB
from tests.support.processor import Processor, statuses
from tests.support.procs import free_port, wait_for
from tests.support.web import WebService


@pytest.fixture
def captured():
    """What the kube-face handler writes; the root logger restored afterwards."""
    stream = io.StringIO()
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield stream
    root.handlers[:] = before
    root.setLevel(level)


def lines_of(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_the_default_is_one_readable_line(captured):
    kflog.setup("INFO", stream=captured)
    logging.getLogger("kubeface.test").info("image %d: %s", 7, "processed")
    (line,) = lines_of(captured)
    assert line.endswith("INFO kubeface.test: image 7: processed")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_json_lines_carry_time_level_service_message_and_the_image(captured):
    kflog.setup("INFO", "json", service="processor", stream=captured)
    logger = logging.getLogger("kubeface.test")
    logger.info("starting")
    with kflog.image_context(42):
        logger.warning("image %d: requeued", 42)
    logger.info("explicit", extra={"image_id": 9})
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        logger.exception("it broke")
    events = [json.loads(line) for line in lines_of(captured)]
    assert len(events) == 4
    first, image, explicit, broken = events
    assert first["level"] == "INFO" and first["service"] == "processor"
    assert first["message"] == "starting" and "image_id" not in first
    assert time.strptime(first["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert image["image_id"] == 42 and image["level"] == "WARNING"
    assert explicit["image_id"] == 9
    assert "image_id" not in broken  # the context ended with its block
    assert "RuntimeError: boom" in broken["exception"]


def test_setup_again_replaces_the_handler(captured):
    kflog.setup("INFO", "text", stream=captured)
    kflog.setup("DEBUG", "json", service="frontend", stream=captured)
    logging.getLogger("x").debug("once")
    (line,) = lines_of(captured)
    assert json.loads(line)["message"] == "once"


@pytest.mark.parametrize("fmt", kflog.FORMATS)
def test_secrets_and_url_passwords_are_masked(captured, fmt):
    kflog.setup("INFO", fmt, secrets=["s3cr3t-Pw"], stream=captured)
    logger = logging.getLogger("kubeface.test")
    logger.warning("connecting to mysql+pymysql://kubeface:hunter2@db:3306/kube")
    logger.warning("password was %s", "s3cr3t-Pw")
    try:
        raise ValueError("auth failed with s3cr3t-Pw for amqp://u:tok3n@host/")
    except ValueError:
        logger.exception("failed")
    text = captured.getvalue()
    for secret in ("hunter2", "s3cr3t-Pw", "tok3n"):
        assert secret not in text
    assert "mysql+pymysql://kubeface:***@db:3306/kube" in text


def test_log_format_is_validated():
    assert load(environ={}).log_format == "text"
    assert load(environ={"LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ConfigError, match="LOG_FORMAT is malformed: expected text or json"):
        load(environ={"LOG_FORMAT": "xml"})


def json_events(path: Path) -> list[dict]:
    """Every line of a service's log, each of which must be one JSON object."""
    events = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                pytest.fail(f"not a JSON line in {path.name}: {line!r}")
    return events


def test_services_log_json_and_never_the_password(service_env, db, mariadb: MariaDB,
                                                  image_dirs, tmp_path):
    """The receiver and the processor with LOG_FORMAT=json: a posted image, a face service
    that is away and a wrong database password all logged as JSON lines, the processor's with
    the image's id, and no password in any of them."""
    env = {**service_env, "LOG_FORMAT": "json"}
    password = mariadb.password
    receiver = WebService("receiver", env, tmp_path / "receiver.log").start()
    # The face service is away: the image is claimed, the call fails, the attempt is logged.
    processor = Processor(tmp_path / "processor", {
        **env, "GRPC_ADDRESS": f"127.0.0.1:{free_port()}", "GRPC_TIMEOUT_SECONDS": "1",
        "BREAKER_FAIL_MAX": "100", "PROCESSOR_METRICS_PORT": str(free_port())})
    try:
        (unknown := image_dirs[1] / "a.jpg").write_bytes(b"x")
        reply = receiver.post_json("/image/post", {"path": unknown.name})
        assert reply.status == 202
        image_id = reply.json()["id"]
        processor.start()
        wait_for(lambda: any(e.get("image_id") == image_id and "attempt" in e["message"]
                             for e in json_events(processor.log)),
                 "the processor's attempt logged with the image id", 60)
        assert statuses(db, [image_id])[image_id] in {"pending", "processing"}
        # A second receiver with a wrong password: 503, and the reason logged without it.
        wrong = WebService("receiver", {**env, "MYSQL_USERPASSWORD": "kubeface:Wr0ng-pw-xyz"},
                           tmp_path / "wrong" / "receiver.log").start()
        try:
            assert wrong.post_json("/image/post", {"path": "b.jpg"}).status == 503
        finally:
            wrong.stop()
    finally:
        receiver.stop()
        processor.stop()
    logs = {"receiver": receiver.log, "processor": processor.log, "wrong": wrong.log}
    for name, path in logs.items():
        events = json_events(path)
        assert events and all(e["service"] == name.replace("wrong", "receiver")
                              for e in events), name
        assert all({"time", "level", "service", "message"} <= set(e) for e in events)
        text = path.read_text()
        assert password not in text and "Wr0ng-pw-xyz" not in text, name
    assert any(e["level"] == "WARNING" and "database unavailable" in e["message"]
               for e in json_events(wrong.log))
