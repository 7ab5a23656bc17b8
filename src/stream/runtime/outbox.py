"""Every record a batch sends, confirmed before the batch's offsets are committed.

A Kafka send only hands a record to the producer; the broker's answer comes later, in the
delivery future the send returns.  An unread future is a record that may be lost without a
trace.  So each batch of the worker sends through an :class:`Outbox`:

* :meth:`Outbox.send` keeps every record with its delivery future, what it carries and what
  to do once it is written (log it, count it, notify the plugins);
* :meth:`Outbox.confirm` waits for every future of the batch.  Only when the broker
  acknowledged all of them do the "written" log lines and metrics happen; the batch may
  then be committed.  Every failure is one of two kinds (:func:`permanent`):

  - *permanent* (authorisation refused, a record too large, an invalid topic): raises
    :class:`~stream.errors.DeliveryError`; the worker stops without committing the batch;
  - *transient* (timeouts, a broker away, leadership changes): with a :class:`Retry`, the
    failed records are sent again with a bounded backoff for as long as the failure lasts
    (the records the broker acknowledged are not sent twice); without one (exactly-once,
    where a failed send dooms the transaction) it raises too, and the stage aborts.

Nothing is ever counted as written that the broker did not acknowledge.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiokafka import errors as kafka_errors

from ..errors import DeliveryError

__all__ = ["CONFIRM_TIMEOUT", "Outbox", "Retry", "permanent"]

log = logging.getLogger(__name__)

#: Seconds to wait for the broker's answer to a batch's records before counting them as
#: failed (aiokafka's own request timeout and retries are within this).
CONFIRM_TIMEOUT = 120.0

#: ``send(topic, key, value, headers, partition)`` -> the delivery future; ``partition`` is
#: the input partition the record comes from (exactly-once: it picks the transaction).
SendFunction = Callable[[str, "bytes | None", "bytes | None", "list[tuple[str, bytes]] | None", "int | None"],
                        Awaitable["asyncio.Future[Any]"]]

#: Errors that sending again cannot cure: the worker stops and says what to fix.
_PERMANENT: tuple[type[BaseException], ...] = tuple(
    getattr(kafka_errors, name) for name in (
        "TopicAuthorizationFailedError", "ClusterAuthorizationFailedError", "TransactionalIdAuthorizationFailed",
        "GroupAuthorizationFailedError", "MessageSizeTooLargeError", "RecordTooLargeError", "InvalidTopicError",
        "UnsupportedVersionError", "UnsupportedForMessageFormatError", "InvalidRequiredAcksError",
        "PolicyViolationError",
    ) if hasattr(kafka_errors, name))


def permanent(exc: BaseException) -> bool:
    """True when a failed send cannot succeed by sending again (see the module docstring)."""
    while isinstance(exc, DeliveryError) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, DeliveryError):
        exc = exc.cause
    return isinstance(exc, _PERMANENT)


@dataclass
class Retry:
    """How a transient failure is retried: ``trouble(reason)`` is called on each failure
    (the worker reports not-ready), ``reset()`` before sending again (a new producer),
    ``recovered()`` once the batch is confirmed after a failure; the wait between tries
    doubles from ``first`` to ``longest`` seconds."""

    trouble: Callable[[str], None] = lambda reason: None
    reset: Callable[[], Awaitable[None]] | None = None
    recovered: Callable[[], None] = lambda: None
    first: float = 0.5
    longest: float = 30.0


@dataclass(slots=True)
class _Pending:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None
    partition: int | None
    what: str
    then: Callable[[], None] | None
    written: Callable[[Any], None] | None
    future: asyncio.Future[Any] | None = None


@dataclass
class Outbox:
    """The sends of one batch.  ``send_function`` hands a record to the producer and returns
    its delivery future (raising when the producer refuses it at once)."""

    send_function: SendFunction
    retry: Retry | None = None
    timeout: float = CONFIRM_TIMEOUT
    pending: list[_Pending] = field(default_factory=list)
    #: Records sent again after a transient failure (over the outbox's life).
    resent: int = 0

    async def send(self, topic: str, key: bytes | None, value: bytes | None, *,
                   headers: list[tuple[str, bytes]] | None = None, partition: int | None = None,
                   what: str = "", then: Callable[[], None] | None = None,
                   written: Callable[[Any], None] | None = None) -> None:
        """Hand one record to the producer and keep it with its delivery future.

        :param partition: the input partition the record comes from (exactly-once).
        :param what: what the record is, for the error if it is refused (``article ID``).
        :param then: called once the broker has acknowledged the record (by :meth:`confirm`).
        :param written: called with the record's metadata (its offset) once acknowledged.
        """
        pending = _Pending(topic, key, value, headers, partition, what, then, written)
        await self._send(pending)
        self.pending.append(pending)

    async def _send(self, p: _Pending) -> None:
        try:
            p.future = await self.send_function(p.topic, p.key, p.value, p.headers, p.partition)
        except DeliveryError:
            raise
        except Exception as exc:
            if self.retry is None or permanent(exc):
                raise DeliveryError(p.topic, p.what, exc) from exc
            # Refused at once for a transient reason (the producer's buffer, a closed
            # producer being replaced): a failed future, sent again by confirm().
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            p.future = failed

    async def confirm(self) -> int:
        """Wait for the broker's answer to every record sent so far, then run their ``then``.

        :return: how many records were confirmed.
        :raises DeliveryError: a record was refused for good, or (without a :class:`Retry`)
            refused or not answered within ``timeout`` seconds; nothing of the batch counts
            as written then.
        """
        pending, self.pending = self.pending, []
        if not pending:
            return 0
        delay = self.retry.first if self.retry else 0.0
        failures = 0
        waiting = pending
        while True:
            failed = await self._wait(waiting)
            if not failed:
                break
            first, exc = failed[0]
            error = DeliveryError(first.topic, first.what, exc)
            if self.retry is None or any(permanent(e) for _p, e in failed):
                raise error from exc
            failures += 1
            self.retry.trouble(f"{len(failed)} record(s) not acknowledged ({error}); sending again in {delay:g} s")
            log.warning("%d of %d record(s) of the batch were not acknowledged (%s: %s); sending them again in "
                        "%g s (try %d)", len(failed), len(pending), type(exc).__name__, exc, delay, failures)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry.longest)
            if self.retry.reset is not None:
                try:
                    await self.retry.reset()
                except Exception as exc:  # the broker still away: the sends below fail, and we wait more
                    log.warning("a new producer could not be started (%s: %s)", type(exc).__name__, exc)
            waiting = [p for p, _e in failed]
            for p in waiting:
                await self._send(p)
            self.resent += len(waiting)
        if failures and self.retry is not None:
            self.retry.recovered()
            log.warning("the batch's records were acknowledged after %d failed tries", failures)
        for p in pending:
            if p.written is not None and p.future is not None:
                p.written(p.future.result())
            if p.then is not None:
                p.then()
        return len(pending)

    async def _wait(self, pending: list[_Pending]) -> list[tuple[_Pending, BaseException]]:
        futures = [p.future for p in pending if p.future is not None]
        _done, not_done = await asyncio.wait(futures, timeout=self.timeout) if futures else (set(), set())
        failed: list[tuple[_Pending, BaseException]] = []
        for p in pending:
            assert p.future is not None
            if p.future in not_done:
                p.future.cancel()
                failed.append((p, TimeoutError(f"no answer from the broker within {self.timeout:.0f} s")))
                continue
            exc = p.future.exception()
            if exc is not None:
                failed.append((p, exc))
        return failed
