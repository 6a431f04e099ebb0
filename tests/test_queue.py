"""The NSQ contract against real nsqd/nsqlookupd: publish (single and bulk) and consume."""

import asyncio
import threading

import nsq as pynsq
import pytest
import tornado.ioloop

from kubeface.core import config, queue
from kubeface.core.messages import (
    CHANNEL,
    TOPIC,
    MalformedMessage,
    decode_image_id,
    encode_image_id,
)
from kubeface.core.queue import Publisher, PublishError

BOTH = pytest.mark.parametrize("nsq", ["plain", "tls"], indirect=True)


def publisher_for(nsq, timeout: float = 5.0) -> Publisher:
    """As the services make theirs from ``nsq``'s settings (TLS with a client certificate)."""
    return Publisher(nsq.nsqd_api, timeout=timeout,
                     tls=queue.tls_context(config.load(nsq.env())))


def test_body_is_the_originals_int64_little_endian():
    assert encode_image_id(1) == b"\x01\x00\x00\x00\x00\x00\x00\x00"
    assert decode_image_id(encode_image_id(2**40 + 7)) == 2**40 + 7


@pytest.mark.parametrize("body", [b"", b"123", b"12345678901", b"\x00" * 8, b"\xff" * 8])
def test_malformed_bodies_are_rejected(body):
    with pytest.raises(MalformedMessage):
        decode_image_id(body)


def consume(nsq, count: int, timeout: float = 20.0) -> list[int]:
    """Read ``count`` messages through nsqlookupd with pynsq, as the processor does."""
    settings = config.load(nsq.env())
    got: list[int] = []
    done = threading.Event()

    def run():
        asyncio.set_event_loop(asyncio.new_event_loop())
        loop = tornado.ioloop.IOLoop.current()

        def handler(message):
            got.append(decode_image_id(message.body))
            if len(got) >= count:
                done.set()
                loop.add_callback(loop.stop)
            return True

        reader = pynsq.Reader(
            topic=TOPIC, channel=CHANNEL, message_handler=handler,
            lookupd_http_addresses=[f"http://127.0.0.1:{nsq.lookupd_http}"],
            lookupd_poll_interval=1, lookupd_poll_jitter=0.0, max_in_flight=10,
            tls_v1=settings.nsq_tls_files is not None, tls_options=queue.tls_options(settings),
        )
        loop.call_later(timeout, loop.stop)
        loop.start()
        reader.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    done.wait(timeout)
    thread.join(5)
    return got


@BOTH
def test_published_ids_reach_a_consumer_through_nsqlookupd(nsq):
    publisher = publisher_for(nsq)
    publisher.ping()
    publisher.publish(41)
    publisher.publish_many([42, 43, 44])
    assert sorted(consume(nsq, 4)) == [41, 42, 43, 44]


@BOTH
def test_publishing_to_a_stopped_nsqd_raises(nsq):
    publisher = publisher_for(nsq, timeout=1)
    nsq.stop_nsqd()
    with pytest.raises(PublishError, match="unreachable"):
        publisher.publish(1)
    with pytest.raises(PublishError):
        publisher.ping()


@BOTH
def test_messages_survive_an_nsqd_restart(nsq):
    publisher = publisher_for(nsq)
    publisher.publish_many(list(range(1, 301)))  # more than --mem-queue-size: some on disk
    nsq.stop_nsqd()
    nsq.start_nsqd()
    assert sorted(consume(nsq, 300)) == list(range(1, 301))
