"""The /wechat route over real HTTP (httpx against the ASGI app), signed and in
safe mode encrypted with wechatpy's crypto, as WeChat's servers send it."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
import time
from typing import Any

import pytest
import yaml

from bot.channels.wechat.security import wechat_signature
from flows.paths import default_data_dir

pytestmark = pytest.mark.anyio

MODES = ["plain", "compatible", "safe"]
USER = "oFq3Q5xYk2WmTn7Rb9HcL0gZ1aVe"
TOKEN = "tongxin_test_token"


def ticket_count(kit: Any) -> int:
    return len(kit.core.store.list_tickets())


async def wait_for(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


# -- GET verification ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["plain", "safe"])
async def test_get_echoes_only_with_a_valid_signature(kit_factory, mode: str) -> None:
    async with kit_factory(mode=mode) as kit:
        client = kit.wechat.client
        ts, nonce = str(int(time.time())), "1514130981"
        good = {"signature": wechat_signature(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce}
        res = await client.get("/wechat", params={**good, "echostr": "7151863271380465"})
        assert (res.status_code, res.text) == (200, "7151863271380465")
        forged = {**good, "signature": wechat_signature("guess", ts, nonce), "echostr": "e1"}
        res = await client.get("/wechat", params=forged)
        assert res.status_code == 403 and "e1" not in res.text
        old = str(int(time.time()) - 3600)
        stale = {"signature": wechat_signature(TOKEN, old, nonce), "timestamp": old}
        res = await client.get("/wechat", params={**stale, "nonce": nonce, "echostr": "e2"})
        assert res.status_code == 403 and "e2" not in res.text


# -- messages and events, in every mode -------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_text_gets_a_passive_reply_in_every_mode(kit_factory, mode: str) -> None:
    async with kit_factory(mode=mode) as kit:
        answer = await kit.wechat.say(USER, "我想报名当志愿者，我会修家电")
        assert answer.status == 200
        assert answer.fields["ToUserName"] == USER
        assert answer.fields["FromUserName"] == "gh_tongxin0001"
        assert answer.fields["MsgType"] == "text"
        assert "志愿" in answer.text
        if mode != "plain":
            assert "<Encrypt>" in answer.body and "志愿" not in answer.body


async def test_compatible_mode_works_without_the_aes_key(kit_factory) -> None:
    """WeChat set to compatible mode before the operator set the key: the
    plaintext half is used, and the reply may be plaintext (WeChat accepts both)."""
    async with kit_factory(mode="plain") as kit:
        kit.wechat.mode = "compatible"
        answer = await kit.wechat.say(USER, "转人工")
        assert answer.status == 200 and "人工" in answer.text
        kit.wechat.mode = "safe"  # only ciphertext, and no key to read it
        assert (await kit.wechat.say(USER, "转人工")).status == 400


async def test_safe_mode_refuses_unencrypted_requests(kit_factory) -> None:
    async with kit_factory(mode="safe") as kit:
        kit.wechat.mode = "plain"  # validly signed, but the body is not covered by a signature
        answer = await kit.wechat.say(USER, "我想申请红色信贷")
        assert answer.status == 403
        assert kit.core.store.message_log("wechat", USER) == []


async def test_safe_mode_checks_the_body_signature(kit_factory) -> None:
    async with kit_factory(mode="safe") as kit:
        query, body = kit.wechat.signed(kit.wechat.text_xml(USER, "转人工"))
        query["msg_signature"] = wechat_signature(TOKEN, query["timestamp"], query["nonce"], "x")
        assert (await kit.wechat.post(query, body)).status == 403
        query, body = kit.wechat.signed(kit.wechat.text_xml(USER, "转人工"))
        tampered = body.replace(b"<Encrypt><![CDATA[", b"<Encrypt><![CDATA[AAAA")
        assert (await kit.wechat.post(query, tampered)).status == 403
        assert ticket_count(kit) == 0


async def test_every_recorded_payload_gets_the_right_answer(kit_factory, fixtures_xml) -> None:
    async with kit_factory() as kit:
        say = kit.wechat.send
        welcome = await say(fixtures_xml("subscribe"))
        assert "欢迎关注" in welcome.text and "隐私" in welcome.text
        assert kit.core.store.is_subscribed("wechat", USER) is True

        assert "不过我暂时只能看懂文字" in (await say(fixtures_xml("video"))).text
        assert "视频" in (await say(fixtures_xml("shortvideo"))).text
        assert "链接" in (await say(fixtures_xml("link"))).text
        assert "文件" in (await say(fixtures_xml("file"))).text
        assert "打字" in (await say(fixtures_xml("voice"))).text
        assert "收到图片" in (await say(fixtures_xml("image"))).text
        assert "收到您的位置" in (await say(fixtures_xml("location"))).text
        assert "初心驿站" in (await say(fixtures_xml("text"))).text

        view = await say(fixtures_xml("view"))
        assert (view.status, view.body) == (200, "success")

        click = await say(fixtures_xml("click"))
        assert "红色信贷预申请" in click.text

        gone = await say(fixtures_xml("unsubscribe"))
        assert (gone.status, gone.body) == (200, "success")
        assert kit.core.store.is_subscribed("wechat", USER) is False


async def test_recognised_voice_and_location_and_image_fill_a_report(
    kit_factory, fixtures_xml
) -> None:
    async with kit_factory() as kit:
        first = await kit.wechat.send(fixtures_xml("voice_recognised"))
        assert "位置" in first.text  # the report form asks where
        placed = await kit.wechat.send(fixtures_xml("location"))
        assert "已记录位置：幸福路与团结路交叉口东北角" in placed.text
        attached = await kit.wechat.send(fixtures_xml("image"))
        assert "图片已附在这次问题反映里" in attached.text
        await kit.wechat.say(USER, "不留")
        done = await kit.wechat.say(USER, "确认")
        assert "工单号" in done.text
        (ticket,) = kit.core.store.list_tickets()
        assert (ticket.kind, ticket.channel, ticket.user_id) == ("report_issue", "wechat", USER)
        assert ticket.fields["place"] == "幸福路与团结路交叉口东北角"
        assert ticket.fields["attachments"] == ["Hn4Jk6Lm8Np0Qr2St4Uv6Wx8Yz0Ab2Cd4Ef6Gh8Ij0Kl2"]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("flow_legal_aid", "法律咨询预约"),
        ("flow_mediation", "矛盾调解申请"),
        ("flow_report", "反映什么问题"),
        ("flow_volunteer", "志愿者报名"),
        ("ticket_status", "没有提交过"),
        ("human_handoff", "人工"),
    ],
)
async def test_menu_clicks_start_the_services(kit_factory, fixtures_xml, key, expected) -> None:
    async with kit_factory() as kit:
        xml = fixtures_xml("click").replace("flow_microloan", key)
        answer = await kit.wechat.send(xml)
        assert expected in answer.text


# -- hostile requests ---------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_forged_signature_is_403_and_nothing_is_processed(kit_factory, mode: str) -> None:
    async with kit_factory(mode=mode) as kit:
        xml = kit.wechat.text_xml(USER, "楼道里的路灯坏了，在幸福路3号楼，电话13912345678")
        query, body = kit.wechat.signed(xml, token="not-the-token")
        answer = await kit.wechat.post(query, body)
        assert answer.status == 403 and answer.text is None
        query, body = kit.wechat.signed(xml)
        del query["signature"]
        if mode != "plain":
            del query["msg_signature"]
        assert (await kit.wechat.post(query, body)).status == 403
        assert ticket_count(kit) == 0
        assert kit.core.store.message_log("wechat", USER) == []


async def test_stale_timestamp_is_a_replay(kit_factory) -> None:
    async with kit_factory(mode="safe") as kit:
        old = int(time.time()) - 301
        answer = await kit.wechat.send(kit.wechat.text_xml(USER, "转人工"), timestamp=old)
        assert answer.status == 403
        assert ticket_count(kit) == 0


@pytest.mark.parametrize(
    ("name", "body", "status"),
    [
        (
            "bomb",
            b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">'
            b'<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;">'
            b"]><xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName>"
            b"<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&e;&e;&e;&e;</Content>"
            b"<MsgId>1</MsgId></xml>",
            400,
        ),
        (
            "xxe",
            b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName>"
            b"<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&x;</Content>"
            b"<MsgId>1</MsgId></xml>",
            400,
        ),
        ("oversize", b"<xml><Content>" + b"a" * (64 * 1024) + b"</Content></xml>", 413),
        ("bad-utf8", b"<xml><ToUserName>gh</ToUserName><Content>\xc3\x28\xff</Content></xml>", 400),
        ("truncated", b"<xml><ToUserName><![CDATA[gh]]></ToUserName><FromUserName><![CDA", 400),
    ],
    ids=["bomb", "xxe", "oversize", "bad-utf8", "truncated"],
)
async def test_hostile_bodies_get_the_right_status(kit_factory, name, body, status) -> None:
    async with kit_factory() as kit:
        query, _ = kit.wechat.signed("<xml/>")
        started = time.perf_counter()
        answer = await kit.wechat.post(query, body)
        assert answer.status == status
        assert time.perf_counter() - started < 1.0
        # ...and the next real message is handled as usual.
        assert "人工" in (await kit.wechat.say(USER, "转人工")).text
        assert ticket_count(kit) == 1


async def test_oversize_body_without_content_length_is_cut_off(kit_factory) -> None:
    async with kit_factory() as kit:
        query, _ = kit.wechat.signed("<xml/>")

        async def chunks():
            for _ in range(100):
                yield b"<a>" + b"x" * 1024 + b"</a>"

        res = await kit.wechat.client.post("/wechat", params=query, content=chunks())
        assert res.status_code == 413


async def test_encrypted_hostile_payloads_inside_a_valid_envelope(kit_factory) -> None:
    """A valid signature does not let a bomb through the decrypted layer either."""
    async with kit_factory(mode="safe") as kit:
        inner = (
            '<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            "<xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName>"
            "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&x;</Content>"
            "<MsgId>9</MsgId></xml>"
        )
        answer = await kit.wechat.send(inner)
        assert answer.status == 400


# -- WeChat's retries ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["plain", "safe"])
async def test_a_retry_returns_the_same_reply_and_never_a_second_ticket(
    kit_factory, mode: str
) -> None:
    async with kit_factory(mode=mode) as kit:
        await kit.wechat.say(USER, "我要反映问题，小区消防通道被车堵死了")
        await kit.wechat.say(USER, "幸福路3号楼")
        await kit.wechat.say(USER, "不留")
        msg_id = kit.wechat.next_msg_id()
        first = await kit.wechat.say(USER, "确认", msg_id=msg_id)
        assert "工单号" in first.text
        # WeChat retries three times, one of them while a new message arrives.
        retries = await asyncio.gather(
            *(kit.wechat.say(USER, "确认", msg_id=msg_id) for _ in range(3))
        )
        assert [r.text for r in retries] == [first.text] * 3
        assert ticket_count(kit) == 1


async def test_concurrent_retries_of_a_message_in_flight_create_one_ticket(kit_factory) -> None:
    async with kit_factory() as kit:
        await kit.wechat.say(USER, "我要反映问题，路灯坏了")
        await kit.wechat.say(USER, "幸福路5号楼")
        await kit.wechat.say(USER, "不留")
        msg_id = kit.wechat.next_msg_id()
        answers = await asyncio.gather(
            *(kit.wechat.say(USER, "确认", msg_id=msg_id) for _ in range(4))
        )
        assert len({a.text for a in answers}) == 1 and "工单号" in answers[0].text
        assert ticket_count(kit) == 1


async def test_event_retries_are_deduplicated_by_user_and_time(kit_factory, fixtures_xml) -> None:
    async with kit_factory() as kit:
        xml = fixtures_xml("click").replace("flow_microloan", "human_handoff")
        answers = [await kit.wechat.send(xml) for _ in range(3)]
        assert len({a.text for a in answers}) == 1
        assert ticket_count(kit) == 1


# -- the 5-second budget ---------------------------------------------------------------


def hold_write_lock(db_path: Any, seconds: float, started: threading.Event) -> threading.Thread:
    """Another process-like connection holds SQLite's write lock for `seconds`."""

    def hold() -> None:
        conn = sqlite3.connect(str(db_path), timeout=30, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        started.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    return thread


async def blocked_at_confirmation(kit: Any, problem: str, seconds: float) -> threading.Thread:
    """A report form filled up to its confirmation, and the database's write lock
    held by another connection for `seconds` (join the returned thread)."""
    await kit.wechat.say(USER, f"我要反映问题，{problem}")
    await kit.wechat.say(USER, "幸福路7号楼")
    await kit.wechat.say(USER, "不留")
    started = threading.Event()
    holder = hold_write_lock(kit.core.settings.db_path, seconds, started)
    started.wait(5)
    return holder


async def test_over_budget_answers_success_and_delivers_via_customer_service_api(
    kit_factory,
) -> None:
    async with kit_factory(budget_s=0.5) as kit:
        holder = await blocked_at_confirmation(kit, "楼道里堆满了杂物", 2.0)
        msg_id = kit.wechat.next_msg_id()
        t0 = time.perf_counter()
        answer = await kit.wechat.say(USER, "确认", msg_id=msg_id)
        elapsed = time.perf_counter() - t0
        assert (answer.status, answer.body) == (200, "success")
        assert elapsed < 1.5  # inside WeChat's 5 s, not after the lock is gone
        # WeChat's retry while the turn is still blocked: also "success", nothing extra.
        retry = await kit.wechat.say(USER, "确认", msg_id=msg_id)
        assert retry.body == "success"
        await asyncio.to_thread(holder.join)
        sent = await wait_for(lambda: kit.api.texts_to(USER))
        assert len(sent) == 1 and "工单号" in sent[0]
        # A retry after delivery must not answer the same reply a second time.
        late_retry = await kit.wechat.say(USER, "确认", msg_id=msg_id)
        assert late_retry.body == "success"
        await asyncio.sleep(0.5)
        assert len(kit.api.texts_to(USER)) == 1
        assert ticket_count(kit) == 1
        (item,) = kit.core.store.list_outbox()
        assert item.status == "sent"


# -- long replies -------------------------------------------------------------------------


async def test_a_long_reply_is_split_and_the_rest_follows_via_the_api(
    kit_factory, tmp_path
) -> None:
    # Operators edit the texts; a greeting can grow past WeChat's 2,048 bytes.
    data = tmp_path / "data"
    shutil.copytree(default_data_dir(), data)
    long_answer = "。".join(f"第{i}条：社区服务中心提供便民服务" for i in range(120)) + "。"
    dialogue = data / "replies" / "dialogue.yml"
    texts = yaml.safe_load(dialogue.read_text(encoding="utf-8"))
    texts["capabilities"] = long_answer
    dialogue.write_text(yaml.safe_dump(texts, allow_unicode=True), encoding="utf-8")
    async with kit_factory(data_dir=data) as kit:
        msg_id = kit.wechat.next_msg_id()
        answer = await kit.wechat.say(USER, "你好", msg_id=msg_id)
        assert len(answer.text.encode("utf-8")) <= 2048
        rest = await wait_for(lambda: kit.api.texts_to(USER))
        assert all(len(t.encode("utf-8")) <= 2048 for t in rest)
        whole = answer.text + "".join(rest)
        assert "第0条" in whole and "第119条" in whole  # nothing lost at the cuts
        again = await kit.wechat.say(USER, "你好", msg_id=msg_id)  # a retry
        assert again.text == answer.text
        await asyncio.sleep(0.4)
        assert kit.api.texts_to(USER) == rest  # the rest is not sent twice


async def test_a_retry_on_another_process_during_a_late_turn_replies_once(kit_factory) -> None:
    """Process A runs over budget and answers `success`; WeChat's retry lands on
    process B while A's turn is still blocked. Exactly one of them may deliver
    the reply: B in its HTTP answer, or A through the customer-service API."""
    async with kit_factory(budget_s=0.5) as a, kit_factory() as b:
        holder = await blocked_at_confirmation(a, "楼道灯坏了一个月", 1.5)
        msg_id = a.wechat.next_msg_id()
        first = await a.wechat.say(USER, "确认", msg_id=msg_id)
        assert first.body == "success"
        retry = await b.wechat.say(USER, "确认", msg_id=msg_id)
        await asyncio.to_thread(holder.join)
        in_answer = 1 if retry.text and "工单号" in retry.text else 0
        await asyncio.sleep(1.5)  # both outbox workers have had their chance
        by_api = [t for t in a.api.texts_to(USER) if "工单号" in t]
        assert in_answer + len(by_api) == 1, (retry.body, by_api)
        assert ticket_count(a) == 1
