"""WeChat's server API (customer-service messages, menus) through wechatpy's
synchronous client, with the access token shared by every process via the store.

Everything here blocks: async callers run it in a thread. WeChat allows few token
fetches a day and each fetch invalidates older tokens after a grace period, so
the token lives in the store's key/value table (one per app id), and a refresh
after 40001/42001 replaces only the token that failed: a process that finds a
newer token already stored uses it instead of fetching yet another one.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import requests
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from flows.store import Store

log = logging.getLogger("tongxin.wechat.api")

DEFAULT_API_URL = "https://api.weixin.qq.com"

# Codes that mean "this access token is not (or no longer) valid".
TOKEN_ERRCODES = frozenset({40001, 40014, 42001})
# Refresh a little before WeChat's expiry so a token never dies mid-request.
TOKEN_MARGIN_S = 300.0
# How long one process may hold the refresh lease before others take over.
REFRESH_LEASE_S = 15.0


class WeChatApiError(Exception):
    """WeChat answered with a non-zero errcode."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode} {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class WeChatNetworkError(Exception):
    """WeChat could not be reached or answered with an HTTP error."""


class SharedTokenCache:
    """The access token in the store's kv table, shared by all processes.

    `fetch` asks WeChat for a new token and returns (token, expires_in seconds).
    """

    def __init__(
        self,
        store: Store,
        appid: str,
        fetch: Callable[[], tuple[str, float]],
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.key = f"wechat:access_token:{appid}"
        self._lease_key = f"wechat:access_token_refresh:{appid}"
        self._fetch = fetch
        self._sleep = sleep
        self._owner = uuid.uuid4().hex

    def get(self) -> str:
        token = self.store.kv_get(self.key)
        return token if token else self.refresh(stale=None)

    def refresh(self, *, stale: str | None) -> str:
        """A token other than `stale`: the one another process stored meanwhile,
        or a freshly fetched one."""
        deadline = time.monotonic() + REFRESH_LEASE_S
        while True:
            with self.store.transaction():
                current = self.store.kv_get(self.key)
                if current and current != stale:
                    return current
                holder = self.store.kv_get(self._lease_key)
                leased = holder is None or holder == self._owner
                if leased:
                    self.store.kv_set(self._lease_key, self._owner, ttl_s=REFRESH_LEASE_S)
            if leased or time.monotonic() > deadline:
                break
            self._sleep(0.05)  # another process is fetching; its token appears shortly
        try:
            token, expires_in = self._fetch()
            ttl = max(60.0, float(expires_in) - TOKEN_MARGIN_S)
            self.store.kv_set(self.key, token, ttl_s=ttl)
            log.info("fetched a new WeChat access token (valid %.0f s)", ttl)
            return token
        finally:
            self.store.kv_delete(self._lease_key)


class _Client(WeChatClient):
    """wechatpy's client pointed at a configurable base URL, its token taken
    from the shared cache instead of per-process memory."""

    def __init__(
        self, appid: str, secret: str, base_url: str, timeout_s: float, token: Callable[[], str]
    ) -> None:
        super().__init__(appid, secret, timeout=timeout_s, auto_retry=False)
        self.API_BASE_URL = base_url.rstrip("/") + "/cgi-bin/"
        self._token_of = token
        self._timeout_s = timeout_s

    @property
    def access_token(self) -> str:
        return self._token_of()

    def fetch_token(self) -> tuple[str, float]:
        # wechatpy's own fetch ignores the base URL and has no timeout.
        res = self._http.get(
            self.API_BASE_URL + "token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
            timeout=self._timeout_s,
        )
        res.raise_for_status()
        result = self._handle_result(res)
        if not isinstance(result, dict) or "access_token" not in result:
            raise WeChatClientException(None, "token response without access_token")
        return str(result["access_token"]), float(result.get("expires_in", 7200))


class WeChatApi:
    """The calls 同心 makes. Raises `WeChatApiError` (WeChat said no) or
    `WeChatNetworkError` (no usable answer)."""

    def __init__(
        self,
        store: Store,
        *,
        appid: str,
        secret: str,
        base_url: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.base_url = (base_url or DEFAULT_API_URL).rstrip("/")
        self._client = _Client(appid, secret, self.base_url, timeout_s, self._token)
        self.tokens = SharedTokenCache(store, appid, self._fetch_token)
        # requests.Session is not meant for concurrent use from several threads.
        self._lock = threading.Lock()
        # For /healthz: when WeChat last answered, and the last failure.
        self.last_ok: float | None = None
        self.last_error: str | None = None

    def _token(self) -> str:
        return self.tokens.get()

    def _fetch_token(self) -> tuple[str, float]:
        return self._call(self._client.fetch_token)

    def send_text(self, openid: str, text: str) -> None:
        """One customer-service text message (the caller keeps it within 2,048 bytes)."""
        self._with_token(lambda: self._client.message.send_text(openid, text))

    def send_template(
        self, openid: str, template_id: str, data: dict[str, Any], url: str | None = None
    ) -> None:
        """One template message (message/template/send): allowed outside the 48-hour window."""
        self._with_token(
            lambda: self._client.message.send_template(openid, template_id, data, url=url)
        )

    def create_menu(self, menu: dict[str, Any]) -> None:
        self._with_token(lambda: self._client.menu.create(menu))

    def download_media(self, media_id: str) -> bytes:
        """A temporary media file (media/get): a resident's photo, kept 3 days by WeChat."""
        return self._with_token(lambda: self._client.media.download(media_id), _file_answer)

    def _with_token(
        self, call: Callable[[], Any], answer: Callable[[Any], Any] | None = None
    ) -> Any:
        read = answer or _json_answer
        try:
            with self._lock:
                used = self.tokens.get()
                try:
                    result = read(self._call(call))
                except WeChatApiError as exc:
                    if exc.errcode not in TOKEN_ERRCODES:
                        raise
                    log.info("WeChat rejected the access token (%s); refreshing", exc.errcode)
                    self.tokens.refresh(stale=used)
                    result = read(self._call(call))
        except WeChatNetworkError as exc:
            self.last_error = f"network: {exc}"[:200]
            raise
        except WeChatApiError as exc:
            # WeChat answered: reachable, but say what it refused (IP allow-list, quota ...).
            self.last_ok, self.last_error = time.time(), f"{exc.errcode} {exc.errmsg}"[:200]
            raise
        self.last_ok, self.last_error = time.time(), None
        return result

    @staticmethod
    def _call(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except WeChatClientException as exc:
            if exc.errcode is None:  # HTTP status error: wechatpy has no errcode for it
                status = getattr(getattr(exc, "response", None), "status_code", "?")
                raise WeChatNetworkError(f"HTTP {status}") from exc
            raise WeChatApiError(int(exc.errcode), str(exc.errmsg)) from exc
        except requests.RequestException as exc:
            raise WeChatNetworkError(type(exc).__name__) from exc
        except ValueError as exc:  # a 200 answer that is not JSON
            raise WeChatNetworkError(f"bad answer: {exc}") from exc


def _file_answer(result: Any) -> bytes:
    """media/get answers the file itself; JSON there means an error wechatpy
    did not raise for, and is no file."""
    if isinstance(result, dict) or not hasattr(result, "content"):
        raise WeChatNetworkError("media/get answered without the file")
    return bytes(result.content)


def _json_answer(result: Any) -> dict[str, Any]:
    """wechatpy hands back the raw response when a 200 answer is not JSON (a
    proxy's error page); that is no proof the message went out."""
    if not isinstance(result, dict):
        raise WeChatNetworkError("answer is not WeChat's JSON")
    return result
