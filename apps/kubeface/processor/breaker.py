"""The circuit breaker in front of the face service (pybreaker, as the article has it).

After ``fail_max`` consecutive face-service failures (transport errors, UNAVAILABLE,
DEADLINE_EXCEEDED) the breaker opens and lets no call through. When the open period is over it
goes half-open and asks the gRPC health service (the article's "ping"); it closes only on
SERVING. Any other answer, or none, opens it again for twice as long, up to a cap; closing
resets the period.

Application outcomes (no face, unknown, a bad file) are excluded: they reset the failure count
like a success, because the service answered.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pybreaker

log = logging.getLogger(__name__)

T = TypeVar("T")


class BreakerOpen(pybreaker.CircuitBreakerError):
    """The breaker let the call through to nothing; try again in ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Periods(pybreaker.CircuitBreakerListener):
    """Grows the open period while the service stays down; logs every state change."""

    def __init__(self, base: float, cap: float) -> None:
        self.base, self.cap = base, cap

    def state_change(self, cb, old_state, new_state) -> None:  # type: ignore[no-untyped-def]
        old = old_state.name if old_state else None
        if new_state.name == pybreaker.STATE_OPEN and old == pybreaker.STATE_HALF_OPEN:
            cb.reset_timeout = min(cb.reset_timeout * 2, self.cap)
        elif new_state.name == pybreaker.STATE_CLOSED:
            cb.reset_timeout = self.base
        if new_state.name == pybreaker.STATE_OPEN:
            log.warning("face-service breaker %s -> open for %.1fs", old, cb.reset_timeout)
        else:
            log.info("face-service breaker %s -> %s", old, new_state.name)


class FaceServiceBreaker(pybreaker.CircuitBreaker):
    """pybreaker's state machine with two changes.

    * ``call`` holds the breaker's lock only while it reads or changes the state, not during
      the call: pybreaker's own ``call`` holds it throughout, which would serialise every
      Identify call of the process (``PROCESSOR_MAX_IN_FLIGHT`` would mean nothing).
    * The half-open trial is ``health_check`` (raises unless the service is SERVING), not the
      caller's request, so an image never pays for a probe and the decision is the article's.
    """

    def __init__(
        self,
        health_check: Callable[[], None],
        fail_max: int,
        reset_seconds: float,
        max_reset_seconds: float,
        exclude: list[type[BaseException] | Callable[[Any], bool]] | None = None,
    ) -> None:
        super().__init__(
            fail_max=fail_max,
            reset_timeout=reset_seconds,
            exclude=exclude,
            listeners=[_Periods(reset_seconds, max(reset_seconds, max_reset_seconds))],
            name="face-service",
        )
        self._health_check = health_check
        self._probe_lock = threading.Lock()

    def retry_after(self) -> float:
        """Seconds the breaker stays open (0 when closed or due for its health check)."""
        with self._lock:
            if self.current_state != pybreaker.STATE_OPEN:
                return 0.0
            return self._remaining()

    def _remaining(self) -> float:
        opened_at = self._state_storage.opened_at
        if opened_at is None:
            return 0.0
        elapsed = (datetime.now(UTC) - opened_at).total_seconds()
        return max(0.0, self.reset_timeout - elapsed)

    def _admit(self) -> None:
        """Raise :class:`BreakerOpen` unless a call may go through now."""
        with self._lock:
            if self.current_state == pybreaker.STATE_CLOSED:
                return
            remaining = self._remaining()
            if self.current_state == pybreaker.STATE_OPEN and remaining > 0:
                raise BreakerOpen("face service circuit breaker is open", remaining)
        # Due for the health check: one caller probes, the others wait for its verdict (the
        # check has its own short deadline).
        with self._probe_lock:
            with self._lock:
                if self.current_state == pybreaker.STATE_CLOSED:
                    return
                if self.current_state == pybreaker.STATE_OPEN:
                    remaining = self._remaining()
                    if remaining > 0:
                        raise BreakerOpen("face service circuit breaker is open", remaining)
                    self.half_open()
            try:
                self._health_check()
            except Exception as exc:
                with self._lock:
                    self.open()
                    log.warning("face service health check failed: %s", exc)
                    raise BreakerOpen(
                        f"face service not healthy ({exc})", self.reset_timeout
                    ) from exc
            with self._lock:
                self.close()

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self._admit()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            # pybreaker's own bookkeeping: excluded errors count as a success, others count
            # and may trip the breaker (which raises CircuitBreakerError here).
            with self._lock, contextlib.suppress(pybreaker.CircuitBreakerError):
                self.state._handle_error(exc, reraise=False)
            raise
        with self._lock:
            self.state._handle_success()
        return result
