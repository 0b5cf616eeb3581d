"""Webhook signatures: HMAC-SHA256 of `f"{timestamp}.{body}"` with the webhook's secret."""

import hashlib
import hmac

SIGNATURE_HEADER = "X-Modelvault-Signature"
TIMESTAMP_HEADER = "X-Modelvault-Timestamp"
EVENT_HEADER = "X-Modelvault-Event"
DELIVERY_HEADER = "X-Modelvault-Delivery"


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    message = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: int | str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)
