"""Safe (encrypted) mode: WeChat's AES envelope, through wechatpy's crypto.

The envelope is parsed with our hardened parser and `msg_signature` compared in
constant time before wechatpy decrypts; wechatpy's own `decrypt_message` would
parse with xmltodict and compare with `!=`.
"""

from __future__ import annotations

import binascii
import secrets

from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException

from bot.channels.wechat.security import RequestRejectedError, verify_signature
from bot.channels.wechat.xmlparse import XmlRejectedError, parse_xml


class DecryptionError(RequestRejectedError):
    status = 400


class SafeModeCrypto:
    def __init__(self, token: str, aes_key: str, appid: str) -> None:
        try:
            self._crypto = WeChatCrypto(token, aes_key, appid)
        except (AssertionError, ValueError, binascii.Error) as exc:
            raise ValueError("TONGXIN_WECHAT_AES_KEY must be WeChat's 43-character key") from exc
        self.token = token
        self.appid = appid

    def open(self, body: bytes, *, msg_signature: str | None, timestamp: str, nonce: str) -> bytes:
        """The plaintext XML inside a signed envelope (raises on a bad signature)."""
        fields = parse_xml(body)
        encrypted = fields.get("Encrypt")
        if not encrypted:
            raise XmlRejectedError("no <Encrypt> in an encrypted request")
        verify_signature((self.token, timestamp, nonce, encrypted), msg_signature)
        return self.decrypt(encrypted).encode("utf-8")

    def decrypt(self, encrypted: str) -> str:
        try:
            return str(PrpCrypto(self._crypto.key).decrypt(encrypted, self.appid))
        except InvalidAppIdException as exc:
            raise DecryptionError("message for another app id") from exc
        except Exception as exc:  # bad base64, padding or length: not a WeChat envelope
            raise DecryptionError(f"cannot decrypt: {type(exc).__name__}") from exc

    def seal(self, xml: str, *, timestamp: str) -> str:
        """Encrypt and sign a reply (WeChat requires encrypted replies to encrypted messages)."""
        return str(self._crypto.encrypt_message(xml, secrets.token_hex(8), timestamp))
