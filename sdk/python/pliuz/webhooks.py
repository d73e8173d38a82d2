"""Verify Pliuz webhook deliveries (Standard Webhooks signatures).

Pliuz signs each delivery to an agent's ``webhook_url`` with the agent's
webhook secret (``whsec_...``, printed by ``pliuz agents create --webhook-url``
or ``pliuz agents set-webhook``)::

    from pliuz.webhooks import verify, WebhookVerificationError

    @app.post("/pliuz/webhook")
    async def pliuz_webhook(request: Request) -> Response:
        body = await request.body()                      # the raw bytes, before parsing
        try:
            event = verify(request.headers, body, os.environ["PLIUZ_WEBHOOK_SECRET"])
        except WebhookVerificationError:
            return Response(status_code=400)
        if event["type"] == "run.ready":
            ...                                          # resume event["data"]["run_id"]
        return Response(status_code=204)

The ``webhook-id`` is the same across retries of one event: use it to ignore a
delivery you already handled.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from .errors import PliuzError

__all__ = ["DEFAULT_TOLERANCE_S", "WebhookVerificationError", "sign", "verify"]

#: Deliveries whose timestamp is further than this from the receiver's clock are refused
#: (replay protection), as the Standard Webhooks specification recommends.
DEFAULT_TOLERANCE_S = 300

_SECRET_PREFIX = "whsec_"


class WebhookVerificationError(PliuzError):
    """The delivery is not authentic (or too old, or malformed): do not act on it."""


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    text = secret.strip()
    if text.startswith(_SECRET_PREFIX):
        text = text[len(_SECRET_PREFIX) :]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookVerificationError(
            "the webhook secret is not a whsec_<base64> string as printed by pliuz"
        ) from exc


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookVerificationError(f"the delivery has no {name} header")


def _signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The ``webhook-signature`` header value for one delivery (``v1,<base64>``)."""
    raw = body.encode() if isinstance(body, str) else body
    digest = _signature(_key(secret), msg_id, str(timestamp), raw)
    return "v1," + base64.b64encode(digest).decode()


def verify(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str | bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a delivery's signature and timestamp; return the parsed event.

    ``headers`` is any mapping (names are matched case-insensitively), ``body``
    the raw request body exactly as received, ``secret`` the agent's
    ``whsec_...`` secret. Any of the space-separated ``v1,`` signatures may
    match (secrets can rotate). Raises :class:`WebhookVerificationError` when a
    header is missing, the timestamp is outside ``tolerance_s`` of ``now``, no
    signature matches, or the body is not a JSON object.
    """
    msg_id = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp").strip()
    signatures = _header(headers, "webhook-signature")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_s:
        raise WebhookVerificationError(
            f"webhook-timestamp {sent_at} is more than {tolerance_s}s from now; refusing a "
            "possible replay (check the receiver's clock)"
        )
    raw = body.encode() if isinstance(body, str) else bytes(body)
    expected = _signature(_key(secret), msg_id, timestamp, raw)
    matched = False
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        if version != "v1":
            continue
        try:
            candidate = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        # Check every entry (no early exit) and compare in constant time.
        matched |= hmac.compare_digest(candidate, expected)
    if not matched:
        raise WebhookVerificationError("no webhook-signature matches: not sent by Pliuz")
    try:
        event = json.loads(raw)
    except ValueError:
        raise WebhookVerificationError("the signed body is not JSON") from None
    if not isinstance(event, dict):
        raise WebhookVerificationError("the signed body is not a JSON object")
    return event
