"""Errors of webhook delivery."""

from __future__ import annotations

from ..errors import StreamError

__all__ = ["WebhookError"]


class WebhookError(StreamError):
    """A webhook target or delivery failed.  ``url`` (never with secrets) and, when known,
    ``endpoint``; ``retryable`` says whether a later attempt may succeed."""

    def __init__(self, message: str, *, url: str | None = None, endpoint: str | None = None,
                 retryable: bool = False):
        self.url = url
        self.endpoint = endpoint
        self.retryable = retryable
        super().__init__(message)
