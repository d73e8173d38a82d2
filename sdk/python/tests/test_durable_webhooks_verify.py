"""pliuz.webhooks.verify per Standard Webhooks: signature, tolerance window, rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from pliuz.webhooks import WebhookVerificationError, sign, verify

KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
BODY = json.dumps({"type": "run.ready", "data": {"run_id": "r1"}}).encode()


def headers(msg_id: str = "msg_1", ts: int | None = None, sig: str | None = None) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    return {
        "Webhook-Id": msg_id,
        "Webhook-Timestamp": str(ts),
        "Webhook-Signature": sig if sig is not None else sign(SECRET, msg_id, ts, BODY),
    }


def test_valid_delivery_returns_the_event() -> None:
    assert verify(headers(), BODY, SECRET)["data"] == {"run_id": "r1"}


def test_signature_matches_an_independent_computation() -> None:
    ts = 1_700_000_000
    mac = hmac.new(KEY, f"msg_2.{ts}.".encode() + BODY, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(mac).decode()
    assert sign(SECRET, "msg_2", ts, BODY) == expected
    assert verify(headers("msg_2", ts, expected), BODY, SECRET, now=ts + 10)["type"] == "run.ready"


@pytest.mark.parametrize(
    "change",
    ["body", "id", "timestamp", "secret", "signature"],
)
def test_forged_or_altered_delivery_fails(change: str) -> None:
    ts = int(time.time())
    h = headers("msg_3", ts)
    body, secret = BODY, SECRET
    if change == "body":
        body = BODY.replace(b"r1", b"r2")
    elif change == "id":
        h["Webhook-Id"] = "msg_4"
    elif change == "timestamp":
        h["Webhook-Timestamp"] = str(ts - 1)
    elif change == "secret":
        secret = "whsec_" + base64.b64encode(b"another key, 32 bytes long......").decode()
    else:
        h["Webhook-Signature"] = "v1," + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(WebhookVerificationError):
        verify(h, body, secret)


def test_timestamp_outside_the_tolerance_is_refused() -> None:
    old = int(time.time()) - 301
    with pytest.raises(WebhookVerificationError, match="possible replay"):
        verify(headers(ts=old), BODY, SECRET)
    future = int(time.time()) + 301
    with pytest.raises(WebhookVerificationError):
        verify(headers(ts=future), BODY, SECRET)
    assert verify(headers(ts=old), BODY, SECRET, tolerance_s=600)["type"] == "run.ready"


def test_any_of_several_signatures_may_match() -> None:
    ts = int(time.time())
    good = sign(SECRET, "msg_5", ts, BODY)
    rotated = f"v1,{base64.b64encode(b'y' * 32).decode()} v2,abc {good}"
    assert verify(headers("msg_5", ts, rotated), BODY, SECRET)["type"] == "run.ready"
    with pytest.raises(WebhookVerificationError):
        verify(headers("msg_5", ts, good.replace("v1,", "v2,")), BODY, SECRET)


def test_missing_headers_and_bad_secret_are_clear_errors() -> None:
    h = headers()
    del h["Webhook-Signature"]
    with pytest.raises(WebhookVerificationError, match="webhook-signature"):
        verify(h, BODY, SECRET)
    with pytest.raises(WebhookVerificationError, match="integer"):
        verify({**headers(), "Webhook-Timestamp": "soon"}, BODY, SECRET)
    with pytest.raises(WebhookVerificationError, match="whsec_"):
        verify(headers(), BODY, "whsec_not base64!")
