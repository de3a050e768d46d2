"""The pieces under the route: signatures, hardened XML, translation, rendering, menu."""

from __future__ import annotations

import time
from pathlib import Path
from xml.etree import ElementTree

import pytest
from wechatpy.utils import check_signature

from bot.channels.wechat.menu import MenuError, load_menu
from bot.channels.wechat.render import (
    MAX_TEXT_BYTES,
    join_replies,
    split_text,
    text_reply_xml,
    utf8_len,
)
from bot.channels.wechat.security import (
    SignatureError,
    StaleRequestError,
    verify_fresh,
    verify_signature,
    wechat_signature,
)
from bot.channels.wechat.translate import BadMessageError, translate
from bot.channels.wechat.xmlparse import XmlRejectedError, parse_xml
from flows.definitions import FlowBook
from flows.messages import Reply
from flows.paths import default_data_dir

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE xml [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
 <!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">
]>
<xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&g;</Content><MsgId>1</MsgId></xml>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&x;</Content><MsgId>1</MsgId></xml>"""


def test_signature_is_wechats_sorted_sha1() -> None:
    # wechatpy's own check agrees with ours.
    expected = wechat_signature("tok", "1700000000", "42")
    check_signature("tok", expected, "1700000000", "42")
    verify_signature(("tok", "1700000000", "42"), expected)
    flipped = expected[:-1] + ("1" if expected[-1] != "1" else "2")
    for bad in (None, "", flipped, expected.upper(), wechat_signature("other", "1700000000", "42")):
        with pytest.raises(SignatureError):
            verify_signature(("tok", "1700000000", "42"), bad)


def test_timestamps_outside_five_minutes_are_replays() -> None:
    now = 1_800_000_000.0
    verify_fresh(str(int(now) - 299), now=lambda: now)
    verify_fresh(str(int(now) + 299), now=lambda: now)
    for stale in (str(int(now) - 301), str(int(now) + 301), "", "abc", "-5", "1" * 20, None):
        with pytest.raises(StaleRequestError):
            verify_fresh(stale, now=lambda: now)


def test_xml_bomb_is_refused_quickly() -> None:
    started = time.perf_counter()
    with pytest.raises(XmlRejectedError):
        parse_xml(BOMB)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    "body",
    [
        XXE,
        b'<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/evil.dtd"><xml><MsgType>text</MsgType></xml>',
        b"<xml><ToUserName>gh</ToUserName><FromUserName>o1</From",  # truncated
        b"<xml><Content>\xff\xfe\xc3\x28</Content></xml>",  # not UTF-8
        b"",
        b"plain text",
        b"<root><MsgType>text</MsgType></root>",
        b"<xml>" + b"<a><b><c><d>deep</d></c></b></a>" + b"</xml>",
        b"<xml>" + b"".join(b"<F%d>x</F%d>" % (i, i) for i in range(100)) + b"</xml>",
        b"<xml>" + b"x" * (64 * 1024) + b"</xml>",
    ],
    ids=[
        "xxe",
        "external-dtd",
        "truncated",
        "bad-utf8",
        "empty",
        "not-xml",
        "wrong-root",
        "deep",
        "too-many-fields",
        "oversize",
    ],
)
def test_hostile_xml_is_rejected(body: bytes) -> None:
    with pytest.raises(XmlRejectedError):
        parse_xml(body)


def test_every_recorded_payload_translates(fixtures_xml) -> None:
    def msg(name: str):
        return translate(parse_xml(fixtures_xml(name).encode("utf-8")))

    text = msg("text")
    assert (text.kind, text.text, text.message_id) == (
        "text",
        "初心驿站是干什么的",
        "24843196851183401",
    )
    assert text.channel == "wechat" and text.user_id == "oFq3Q5xYk2WmTn7Rb9HcL0gZ1aVe"
    voice = msg("voice_recognised")
    assert (voice.kind, voice.text) == ("text", "小区消防通道被车堵死了")
    assert msg("voice").kind == "voice"
    loc = msg("location")
    assert loc.kind == "location" and loc.location == (43.802541, 87.615287)
    assert loc.location_label == "幸福路与团结路交叉口东北角"
    image = msg("image")
    # The MediaId: media/get downloads it while WeChat keeps it (3 days).
    assert image.kind == "image"
    assert image.media_ref == "Hn4Jk6Lm8Np0Qr2St4Uv6Wx8Yz0Ab2Cd4Ef6Gh8Ij0Kl2"
    assert msg("video").kind == "video" and msg("shortvideo").kind == "video"
    assert msg("link").kind == "link" and msg("file").kind == "file"
    sub = msg("subscribe")
    assert (sub.kind, sub.event) == ("event", "subscribe")
    assert sub.message_id == "oFq3Q5xYk2WmTn7Rb9HcL0gZ1aVe:1764151000:subscribe"
    assert msg("unsubscribe").event == "unsubscribe"
    click = msg("click")
    assert (click.event, click.event_key) == ("menu", "flow_microloan")
    assert msg("view") is None  # the user left for a web page: nothing to say


def test_translation_refuses_payloads_without_the_essentials() -> None:
    for xml in (
        "<xml><MsgType>text</MsgType><Content>hi</Content><MsgId>1</MsgId></xml>",
        "<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><Content>x</Content></xml>",
        "<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><MsgType>text</MsgType>"
        "<MsgId>1; DROP</MsgId></xml>",
        "<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><MsgType>event</MsgType>"
        "<Event>subscribe</Event></xml>",  # no CreateTime: no way to de-duplicate
    ):
        with pytest.raises(BadMessageError):
            translate(parse_xml(xml.encode()))


def test_long_text_splits_at_sentence_ends_within_2048_bytes() -> None:
    sentence = "红色信贷面向辖区小微商户，额度最高五十万元。"
    text = sentence * 200
    parts = split_text(text, max_parts=10)
    assert len(parts) > 1
    assert all(utf8_len(p) <= MAX_TEXT_BYTES for p in parts)
    assert all(p.endswith("。") for p in parts)
    assert "".join(parts) == text  # nothing lost, nothing doubled


def test_text_beyond_the_part_limit_is_trimmed_with_a_note() -> None:
    parts = split_text("馕" * 5000, max_parts=2, trim_note="（略）")
    assert len(parts) == 2
    assert parts[1].endswith("（略）") and utf8_len(parts[1]) <= MAX_TEXT_BYTES
    # An emoji is never cut in half.
    assert all(p.encode("utf-8").decode("utf-8") == p for p in split_text("😀" * 1000))


def test_reply_xml_escapes_cdata_end_and_control_characters() -> None:
    text = "代码 ]]><script>alert(1)</script> 结束\x07"
    xml = text_reply_xml(to_user="o1", from_account="gh", text=text, now=1_700_000_000)
    root = ElementTree.fromstring(xml)
    assert root.findtext("Content") == "代码 ]]><script>alert(1)</script> 结束"
    assert root.findtext("ToUserName") == "o1" and root.findtext("MsgType") == "text"
    assert root.find("script") is None


def test_replies_join_without_empty_paragraphs() -> None:
    assert join_replies([Reply("一"), Reply("  "), Reply("二\n")]) == "一\n\n二"


def test_menu_file_uses_only_known_keys_and_leaves_placeholders_out() -> None:
    data = default_data_dir()
    keys = set(FlowBook.load(data / "flows.yml", data / "routing.yml").menu_actions)
    menu = load_menu(data / "wechat_menu.yml", keys)
    clicks = [
        b["key"]
        for top in menu.data["button"]
        for b in top.get("sub_button", [top])
        if b["type"] == "click"
    ]
    assert set(clicks) == keys  # every service reachable from the menu
    assert menu.skipped == ["百姓说事云"]
    assert "example.invalid" not in str(menu.data)


def test_menu_errors_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "menu.yml"
    bad.write_text(
        "button:\n"
        "  - {type: click, name: 这个名字实在是太长了, key: flow_microloan}\n"
        "  - {type: click, name: 贷款, key: no_such_key}\n",
        encoding="utf-8",
    )
    with pytest.raises(MenuError) as err:
        load_menu(bad, {"flow_microloan"})
    assert "longer than 16 bytes" in str(err.value) and "no_such_key" in str(err.value)


def test_reply_xml_matches_wechatpys_text_reply() -> None:
    from wechatpy.replies import TextReply

    ours = text_reply_xml(to_user="o1", from_account="gh", text="您好，已提交", now=1_700_000_000)
    theirs = TextReply(target="o1", source="gh", content="您好，已提交", time=1_700_000_000)
    assert ours == theirs.render()
