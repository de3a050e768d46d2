"""Is this request from WeChat, and fresh? Checked before the body is touched.

WeChat signs the callback URL with SHA-1 over the sorted token, timestamp and
nonce (`signature`); in safe and compatible mode it also signs the ciphertext
(`msg_signature`). wechatpy computes the same digest (`WeChatSigner`) but
compares with `!=`; here the comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

# WeChat retries for about 15 s; anything older than this is a replay.
MAX_CLOCK_SKEW_S = 300


class RequestRejectedError(Exception):
    """The request is not from WeChat or not usable; `status` is the HTTP answer."""

    status = 400


class SignatureError(RequestRejectedError):
    status = 403


class StaleRequestError(RequestRejectedError):
    status = 403


def wechat_signature(*parts: str) -> str:
    """SHA-1 over the sorted parts, as WeChat computes `signature` and `msg_signature`."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def verify_signature(expected_parts: tuple[str, ...], given: str | None) -> None:
    if not given:
        raise SignatureError("missing signature")
    if not hmac.compare_digest(wechat_signature(*expected_parts).encode(), given.encode()):
        raise SignatureError("bad signature")


def verify_fresh(
    timestamp: str | None,
    *,
    now: Callable[[], float] = time.time,
    max_skew_s: int = MAX_CLOCK_SKEW_S,
) -> None:
    if not timestamp or not timestamp.isdigit() or len(timestamp) > 12:
        raise StaleRequestError("missing or malformed timestamp")
    if abs(now() - int(timestamp)) > max_skew_s:
        raise StaleRequestError("timestamp outside the replay window")
