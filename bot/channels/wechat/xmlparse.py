"""WeChat's small XML documents, parsed without trusting them.

defusedxml refuses DTDs, entity declarations and external references, so an
XML bomb or an XXE payload fails at once instead of expanding. WeChat's
payloads are one flat `<xml>` element (a few events nest one level), so the
result is a flat mapping of child tag -> text, with nested elements joined as
`Parent.Child`.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from bot.channels.wechat.security import RequestRejectedError

MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 64
MAX_DEPTH = 3


class XmlRejectedError(RequestRejectedError):
    status = 400


def parse_xml(body: bytes) -> dict[str, str]:
    if len(body) > MAX_BODY_BYTES:
        raise XmlRejectedError("body too large")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise XmlRejectedError("body is not UTF-8") from exc
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise XmlRejectedError(f"forbidden XML construct: {type(exc).__name__}") from exc
    except (ParseError, ValueError) as exc:
        raise XmlRejectedError("malformed XML") from exc
    if root.tag != "xml":
        raise XmlRejectedError("root element is not <xml>")
    fields: dict[str, str] = {}
    _collect(root, "", fields, depth=1)
    return fields


def _collect(element: Element, prefix: str, out: dict[str, str], *, depth: int) -> None:
    for child in element:
        if not isinstance(child.tag, str):
            continue  # comments and processing instructions
        name = prefix + child.tag
        if len(child):
            if depth >= MAX_DEPTH:
                raise XmlRejectedError("XML nested too deeply")
            _collect(child, name + ".", out, depth=depth + 1)
        elif name not in out:
            out[name] = (child.text or "").strip()
        if len(out) > MAX_FIELDS:
            raise XmlRejectedError("too many XML fields")
