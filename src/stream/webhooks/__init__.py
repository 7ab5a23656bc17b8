"""Webhook delivery of alerts: subscriptions, Standard Webhooks signing, target checks,
durable retries, and a small receiving sink.  See ``docs/webhooks.md``."""

from .config import Endpoint, Subscriptions, load_subscriptions
from .signing import sign, verify

__all__ = ["Endpoint", "Subscriptions", "load_subscriptions", "sign", "verify"]
