"""Every record a batch sends, confirmed before the batch is acknowledged.

A Kafka send only hands a record to the producer; the broker's answer comes later, in the
delivery future the send returns.  An unread future is a record that may be lost without a
trace (faust's flush before a commit waits for the producer, but raises nothing).  So each
batch of the worker sends through an :class:`Outbox`:

* :meth:`Outbox.send` keeps the delivery future of every record, with what it carries and
  what to do once it is written (log it, count it, notify the plugins);
* :meth:`Outbox.confirm` waits for every future of the batch.  Only when the broker
  acknowledged all of them do the "written" log lines and metrics happen; the batch may
  then be acknowledged (its input offsets committed).  A record the broker refused for good
  (after the client's own retries) raises :class:`~stream.errors.DeliveryError`: the worker
  stops without committing the batch, and the batch is processed again after a restart.

Futures that are not the worker's own sends (the state tables' changelog writes, which
faust buffers) are added with :meth:`Outbox.watch`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from ..errors import DeliveryError

__all__ = ["CONFIRM_TIMEOUT", "NotSent", "Outbox"]

#: Seconds to wait for the broker's answer to a batch's records before giving up on them
#: (aiokafka's own request timeout and retries are within this).
CONFIRM_TIMEOUT = 120.0

#: ``send(topic, key, value, headers, transactional_id)`` -> the delivery future.
SendFunction = Callable[[str, "bytes | None", bytes, "list[tuple[str, bytes]] | None", "str | None"],
                        Awaitable["asyncio.Future[Any]"]]


class NotSent(Exception):
    """A record deliberately not sent (exactly-once: its input partition moved to another
    worker during the batch, and that worker processes the input again)."""

    @classmethod
    def future(cls) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_exception(cls())
        return future


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[Any]
    topic: str
    what: str
    then: Callable[[], None] | None


@dataclass
class Outbox:
    """The sends of one batch.  ``send_function`` hands a record to the producer and returns
    its delivery future (raising when the producer refuses it at once)."""

    send_function: SendFunction
    timeout: float = CONFIRM_TIMEOUT
    pending: list[_Pending] = field(default_factory=list)

    async def send(self, topic: str, key: bytes | None, value: bytes, *,
                   headers: list[tuple[str, bytes]] | None = None, transactional_id: str | None = None,
                   what: str = "", then: Callable[[], None] | None = None) -> None:
        """Hand one record to the producer and keep its delivery future.

        :param what: what the record is, for the error if it is refused (``article ID``).
        :param then: called once the broker has acknowledged the record (by :meth:`confirm`).
        :raises DeliveryError: the producer refused the record at once (too large for the
            producer, producer closed).
        """
        try:
            future = await self.send_function(topic, key, value, headers, transactional_id)
        except DeliveryError:
            raise
        except Exception as exc:
            raise DeliveryError(topic, what, exc) from exc
        self.pending.append(_Pending(future, topic, what, then))

    def watch(self, future: asyncio.Future[Any], topic: str, what: str) -> None:
        """Also wait for ``future`` (a record someone else sent for this batch)."""
        self.pending.append(_Pending(future, topic, what, None))

    async def confirm(self) -> int:
        """Wait for the broker's answer to every record sent so far, then run their ``then``.

        :return: how many records were confirmed.
        :raises DeliveryError: a record was refused or not answered within ``timeout``
            seconds; nothing of the batch counts as written.
        """
        pending, self.pending = self.pending, []
        if not pending:
            return 0
        futures = [p.future for p in pending]
        _done, not_done = await asyncio.wait(futures, timeout=self.timeout)
        for p in pending:
            if p.future in not_done:
                raise DeliveryError(p.topic, p.what, TimeoutError(
                    f"no answer from the broker within {self.timeout:.0f} s"))
            exc = p.future.exception()
            if exc is not None and not isinstance(exc, NotSent):
                raise DeliveryError(p.topic, p.what, exc) from exc
        confirmed = 0
        for p in pending:
            if p.future.exception() is None:
                confirmed += 1
                if p.then is not None:
                    p.then()
        return confirmed
