"""Whole conversations through the collecting channel: what a user sees and
what lands in the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.app import Core
from bot.dispatcher import Dispatcher
from flows.messages import IncomingMessage
from flows.staff import assign_ticket
from tests.conftest import Chat

VALID_ID = "11010519491231002X"  # a checksum-valid test ID number (GB 11643)


def tickets(core: Core, kind: str | None = None) -> list:
    return core.store.list_tickets(kind=kind)


def test_opening_message_with_every_detail_goes_straight_to_confirmation(chat: Chat) -> None:
    reply = chat.say("我叫王芳，电话13912345678，住幸福小区3号楼，楼上邻居天天半夜吵，想申请调解")
    assert "请核对" in reply and "13912345678" in reply and "王芳" in reply
    assert tickets(chat.core) == []  # nothing is filed before the user confirms
    reply = chat.say("确认")
    [ticket] = tickets(chat.core)
    assert ticket.id in reply
    assert ticket.kind == "dispute_mediation"
    assert ticket.department == "和和家调解室"
    assert ticket.phone == "13912345678"
    assert ticket.fields["name"] == "王芳"
    assert "3号楼" in ticket.fields["place"]
    assert "邻居" in ticket.fields["other_party"]


def test_microloan_step_by_step_with_validation_and_correction(chat: Chat) -> None:
    chat.say("我想申请红色信贷")
    chat.say("开了一家馕店")
    assert "1000元到5000000元" in chat.say("50块")  # out of range: a specific re-prompt
    assert "用来做什么" in chat.say("五万")
    reply = chat.say("金额改成八万")
    assert "已更新" in reply and "用来做什么" in reply  # the correction is not taken as the purpose
    chat.say("进货")
    chat.say("艾力")
    assert "11位" in chat.say("1391234")  # a phone that is too short
    summary = chat.say("13912345678")
    assert "80,000元" in summary and "进货" in summary and "艾力" in summary
    chat.say("确认")
    [ticket] = tickets(chat.core, "microloan")
    assert ticket.fields["amount"] == 80000
    assert ticket.department == "创业社区金融服务站"


def test_correction_at_confirmation_updates_the_summary(chat: Chat) -> None:
    chat.say("我叫王芳，电话13912345678，住幸福小区3号楼，楼上邻居天天半夜吵，想申请调解")
    reply = chat.say("电话写错了，是13800001111")
    assert "13800001111" in reply and "请核对" in reply
    chat.say("确认")
    [ticket] = tickets(chat.core)
    assert ticket.phone == "13800001111"


def test_faq_question_in_the_middle_of_a_form_is_answered_and_the_form_resumes(
    chat: Chat,
) -> None:
    chat.say("我想贷款")
    chat.say("卖干果的")
    reply = chat.say("调解要收费吗")
    assert "调解" in reply and "我们继续刚才的红色信贷预申请" in reply
    assert "多少钱" in reply  # the amount is asked again
    chat.say("五万")
    state = chat.core.store.load_conversation("test", "u1")
    assert state and state["form"]["slots"]["amount"] == 50000


def test_cancel_at_any_point_files_nothing(chat: Chat) -> None:
    chat.say("我想申请红色信贷")
    chat.say("开小吃店的")
    # Something was filled in already: the bot makes sure before throwing it away.
    assert "确定要取消吗" in chat.say("不办了，取消吧")
    assert "已取消" in chat.say("是")
    assert tickets(chat.core) == []
    assert "没有正在办理" in chat.say("取消")


def test_switching_to_another_service_mid_form(chat: Chat) -> None:
    chat.say("我想申请红色信贷")
    chat.say("开了一家馕店")
    reply = chat.say("算了，我想报名当志愿者")
    assert "先把红色信贷预申请放一放" in reply and "志愿" in reply
    state = chat.core.store.load_conversation("test", "u1")
    assert state and state["form"]["flow"] == "volunteer_signup"
    # The loan form was put aside, not thrown away.
    assert [f["flow"] for f in state["paused"]] == ["microloan"]
    assert state["paused"][0]["slots"]["business"] == "开了一家馕店"


def test_report_without_a_phone_is_accepted(chat: Chat) -> None:
    chat.say("小区消防通道被车堵死了")
    chat.say("幸福小区北门")
    assert "不留也可以" in chat.say("不留了")
    chat.say("确认")
    [ticket] = tickets(chat.core, "report_issue")
    assert ticket.phone is None
    assert ticket.fields["place"] == "幸福小区北门"
    assert "消防通道" in ticket.fields["description"]


def test_repeated_confirmation_never_files_a_second_ticket(chat: Chat) -> None:
    chat.say("我叫王芳，电话13912345678，住幸福小区3号楼，楼上邻居天天半夜吵，想申请调解")
    first = chat.say("确认")
    again = chat.say("确认")
    assert len(tickets(chat.core)) == 1
    [ticket] = tickets(chat.core)
    assert ticket.id in first and ticket.id in again and "不会重复提交" in again


def test_two_failed_reprompts_offer_a_person(chat: Chat) -> None:
    chat.say("我想申请红色信贷")
    chat.say("开了一家馕店")
    chat.say("五万")
    chat.say("进货")
    chat.say("王芳")
    chat.say("123456")
    chat.say("654321")
    offer = chat.say("111111")
    assert "转给工作人员" in offer
    reply = chat.say("转人工")
    [ticket] = tickets(chat.core, "human_handoff")
    assert ticket.id in reply
    assert ticket.fields["unfinished_flow"] == "microloan"


def test_forms_expire_after_the_idle_time(core: Core) -> None:
    now = [datetime(2026, 11, 26, 10, 0, tzinfo=UTC)]
    dispatcher = Dispatcher(
        store=core.store,
        parser=core.parser,
        engine=core.engine,
        replies=core.replies,
        clock=lambda: now[0],
    )

    def say(text: str) -> str:
        msg = IncomingMessage(channel="test", user_id="u9", text=text)
        return "\n".join(r.text for r in dispatcher.handle(msg))

    say("我想申请红色信贷")
    before = core.store.load_conversation("test", "u9")
    now[0] += timedelta(minutes=10)
    say("开了一家馕店")  # within the idle time the form carries on
    now[0] += timedelta(hours=2)
    reply = say("好的")
    assert "太久没有回复" in reply
    state = core.store.load_conversation("test", "u9")
    assert before is not None and before["form"] is not None
    assert state is not None and state["form"] is None
    assert core.store.list_tickets() == []


def test_legal_aid_request_opens_a_ticket_for_the_workstation(chat: Chat) -> None:
    reply = chat.say("老板拖欠工资三个月了，想找律师起诉他")
    assert "怎么称呼" in reply  # the story is already taken as the description
    chat.say("我叫李强")
    chat.say("13512345678")
    chat.say("确认")
    [ticket] = tickets(chat.core, "legal_aid")
    assert ticket.department == "法律服务工作站"
    assert "拖欠工资" in ticket.fields["description"]


def test_volunteer_signup_creates_a_signup_not_a_ticket(chat: Chat) -> None:
    chat.say("我会理发，想报名志愿者")
    chat.say("张师傅")
    chat.say("13700001111")
    chat.say("周末上午")
    reply = chat.say("确认")
    [volunteer] = chat.core.store.list_volunteers()
    assert volunteer.id in reply
    assert volunteer.team == "理发" and volunteer.phone == "13700001111"
    assert tickets(chat.core) == []


def test_status_lists_only_the_users_own_tickets(core: Core) -> None:
    mine, other = Chat(core, user_id="a"), Chat(core, user_id="b")
    other.say("我叫王芳，电话13912345678，住幸福小区3号楼，楼上邻居天天半夜吵，想申请调解")
    other.say("确认")
    [theirs] = tickets(core)
    assert "没有提交过" in mine.say("我提交的申请有进展吗")
    assert "没有找到" in mine.say(f"查一下工单{theirs.id}")
    status = other.say("我提交的申请有进展吗")
    assert theirs.id in status and "已受理" in status


def test_staff_update_reaches_the_user_on_the_next_turn(chat: Chat) -> None:
    chat.say("我叫王芳，电话13912345678，住幸福小区3号楼，楼上邻居天天半夜吵，想申请调解")
    chat.say("确认")
    [ticket] = tickets(chat.core)
    assign_ticket(chat.core.store, chat.core.replies, ticket.id, "调解员老张", "staff")
    reply = chat.say("你好")
    assert ticket.id in reply and "老张" in reply


def test_id_numbers_are_masked_and_the_conversation_still_completes(chat: Chat) -> None:
    reply = chat.say(
        f"我叫王芳，身份证{VALID_ID}，电话13912345678，楼上邻居天天半夜吵，住幸福小区3号楼，想调解"
    )
    assert "遮挡" in reply and VALID_ID not in reply
    chat.say("确认")
    [ticket] = tickets(chat.core)
    assert VALID_ID not in str(ticket.fields)
    raw = chat.core.store.path.read_bytes()
    wal = chat.core.store.path.with_name(chat.core.store.path.name + "-wal")
    raw += wal.read_bytes() if wal.exists() else b""
    assert VALID_ID.encode() not in raw
    assert "13912345678" not in str(chat.core.store.message_log("test", "u1"))


def test_handoff_is_filed_once(chat: Chat) -> None:
    first = chat.say("转人工")
    second = chat.say("我要找人工客服")
    [ticket] = tickets(chat.core, "human_handoff")
    assert ticket.id in first and ticket.id in second


def test_social_turns_and_out_of_scope_say_what_the_bot_can_do(chat: Chat) -> None:
    assert "红色信贷" in chat.say("你好")
    assert "不客气" in chat.say("谢谢")
    assert "再见" in chat.say("再见")
    assert "不在社区服务范围" in chat.say("明天乌鲁木齐天气怎么样")
    assert tickets(chat.core) == []


def test_faq_answer_then_apply(chat: Chat) -> None:
    reply = chat.say("红色信贷利率多少")
    assert "利率" in reply and "申请" in reply
    assert "经营" in chat.say("申请")


def test_group_chat_never_collects_personal_details(core: Core) -> None:
    group = IncomingMessage(
        channel="telegram",
        user_id="42",
        chat_id="-100",
        in_group=True,
        text="楼上邻居天天半夜吵，想申请调解",
    )
    [reply] = core.dispatcher.handle(group)
    assert reply.private_payload and reply.buttons
    assert core.store.load_conversation("telegram", "42") is None
    start = IncomingMessage(
        channel="telegram",
        user_id="42",
        kind="event",
        event="start",
        event_key=reply.private_payload,
    )
    text = "\n".join(r.text for r in core.dispatcher.handle(start))
    assert "矛盾调解" in text
    state = core.store.load_conversation("telegram", "42")
    assert state and state["form"]["slots"]["other_party"] == "楼上邻居"
    # Somebody else cannot use the link.
    stranger = IncomingMessage(
        channel="telegram",
        user_id="43",
        kind="event",
        event="start",
        event_key=reply.private_payload,
    )
    assert "过期" in core.dispatcher.handle(stranger)[0].text


def test_image_and_location_feed_an_open_report(chat: Chat) -> None:
    chat.say("路灯坏了好几天了")
    located = chat.send(
        IncomingMessage(
            channel="test",
            user_id="u1",
            kind="location",
            location=(43.8, 87.6),
            location_label="友好路口",
        )
    )
    assert "友好路口" in located[0].text
    chat.send(IncomingMessage(channel="test", user_id="u1", kind="image", media_ref="MEDIA123"))
    chat.say("不留")
    chat.say("确认")
    [ticket] = tickets(chat.core, "report_issue")
    assert ticket.fields["place"] == "友好路口"
    assert ticket.fields["attachments"] == ["MEDIA123"]


def test_media_outside_a_form_gets_a_polite_reply(chat: Chat) -> None:
    voice = chat.send(IncomingMessage(channel="test", user_id="u1", kind="voice"))
    assert "打字" in voice[0].text
    sticker = chat.send(IncomingMessage(channel="test", user_id="u1", kind="sticker"))
    assert "表情" in sticker[0].text


def test_platform_retry_returns_the_same_reply_and_files_once(chat: Chat) -> None:
    chat.say("我叫王芳，电话13912345678，住幸福小区3号楼，楼上邻居天天半夜吵，想申请调解")
    confirm = IncomingMessage(channel="test", user_id="u1", text="确认", message_id="m-1")
    first = chat.send(confirm)
    second = chat.send(confirm)
    assert first == second
    assert len(tickets(chat.core)) == 1


def test_empty_and_huge_messages_get_a_reply(chat: Chat) -> None:
    assert "空消息" in chat.say("   ")
    assert chat.say("啊" * 10_000)
    assert chat.say("\x00\x1b[31m\u200b")
    assert chat.say("😀😀😀")


def test_user_can_erase_their_personal_data(chat: Chat) -> None:
    chat.say("我叫王芳，电话13912345678，住幸福小区3号楼，楼上邻居天天半夜吵，想申请调解")
    chat.say("确认")
    assert "确定要删除" in chat.say("删除我的信息")
    assert "没有删除" in chat.say("算了")
    assert chat.core.store.list_tickets()[0].phone == "13912345678"
    chat.say("删除我的信息")
    assert "已删除" in chat.say("确认删除")
    [ticket] = chat.core.store.list_tickets()
    assert ticket.phone is None and "王芳" not in str(ticket.fields)
    assert "王芳" not in str(chat.core.store.message_log("test", "u1"))


def test_question_with_a_story_is_answered_and_the_story_prefills_the_form(chat: Chat) -> None:
    reply = chat.say("开小吃店想贷五万块钱，利息多少")
    assert "利率" in reply and "回复“申请" in reply
    assert "用来做什么" in chat.say("申请")  # business and amount came from the question
    state = chat.core.store.load_conversation("test", "u1")
    assert state and state["form"]["slots"]["amount"] == 50000
    assert "多少钱" not in chat.say("申请")  # "申请" is not taken as the purpose either


def test_refusing_the_optional_phone_does_not_cancel_the_report(chat: Chat) -> None:
    chat.say("垃圾桶满了没人清，幸福小区东门")
    assert "不留也可以" in chat.say("我不想留电话")
    chat.say("确认")
    [ticket] = tickets(chat.core, "report_issue")
    assert ticket.phone is None and ticket.fields["place"] == "幸福小区东门"


def test_street_light_is_not_a_place(chat: Chat) -> None:
    reply = chat.say("我家门口的路灯坏了一个星期了")
    assert "什么位置" in reply  # the bot still asks where
    chat.say("阳光小区3栋")
    chat.say("不留")
    chat.say("确认")
    [ticket] = tickets(chat.core, "report_issue")
    assert ticket.fields["place"] == "阳光小区3栋"


def test_details_given_out_of_order_are_kept(chat: Chat) -> None:
    chat.say("我想当志愿者")
    reply = chat.say("王芳13912345678")  # asked for the skill, got name and phone
    assert "哪类志愿服务" in reply
    chat.say("理发")
    chat.say("周末上午")
    chat.say("确认")
    [volunteer] = chat.core.store.list_volunteers()
    assert (volunteer.name, volunteer.phone, volunteer.team) == ("王芳", "13912345678", "理发")


def test_corrections_by_field_name_and_by_contrast(chat: Chat) -> None:
    chat.say("我想申请调解")
    chat.say("隔壁卖布的老板")
    chat.say("二道桥市场")
    chat.say("他占了我的摊位")
    chat.say("古丽")
    chat.say("13899990000")
    assert "古丽娜" in chat.say("名字写错了，是古丽娜")
    assert "对面卖鞋的老板" in chat.say("不是隔壁卖布的老板，是对面卖鞋的老板")
    assert "阳光小区5号楼" in chat.say("地点写错了，是阳光小区5号楼")
    chat.say("确认")
    [ticket] = tickets(chat.core)
    assert ticket.fields["name"] == "古丽娜"
    assert ticket.fields["other_party"] == "对面卖鞋的老板"
    assert ticket.fields["place"] == "阳光小区5号楼"


def test_amount_reprompt_names_the_range_and_long_names_are_taken(chat: Chat) -> None:
    chat.say("我想贷款")
    chat.say("开馕店的")
    reply = chat.say("好多钱")
    assert "{" not in reply and "多少钱" in reply
    chat.say("3万")
    chat.say("进货")
    chat.say("阿不都热合曼")
    chat.say("13512345678")
    chat.say("确认")
    [ticket] = tickets(chat.core, "microloan")
    assert ticket.fields["name"] == "阿不都热合曼" and ticket.fields["amount"] == 30000


def test_traditional_characters_fill_the_form(chat: Chat) -> None:
    chat.say("我開饢店，想貸3萬元用來進貨")
    state = chat.core.store.load_conversation("test", "u1")
    assert state and state["form"]["slots"]["amount"] == 30000
    # Matched in simplified form, kept in the user's own characters.
    assert "用來進貨" in state["form"]["slots"]["purpose"]


def test_status_question_mid_form_lists_tickets_and_resumes(chat: Chat) -> None:
    chat.say("我叫王芳，电话13912345678，住幸福小区3号楼，楼上邻居天天半夜吵，想申请调解")
    chat.say("确认")
    chat.say("我想贷款")
    reply = chat.say("我之前的申请有进展吗")
    assert tickets(chat.core)[0].id in reply and "我们继续刚才的红色信贷预申请" in reply


def test_a_form_whose_flow_was_renamed_is_dropped_not_fatal(chat: Chat) -> None:
    chat.say("我想贷款")
    raw = chat.core.store.load_conversation("test", "u1")
    assert raw is not None
    raw["form"]["flow"] = "old_loan"
    chat.core.store.save_conversation("test", "u1", raw, 1)
    reply = chat.say("取消")
    assert "重新填写" in reply and "系统刚才出了点问题" not in reply
    assert "红色信贷" in chat.say("我想申请红色信贷")


def test_close_faq_entries_are_offered_by_number(chat: Chat) -> None:
    offered = chat.send(IncomingMessage(channel="test", user_id="u1", text="怎么申请"))
    assert "回复序号" in offered[0].text
    labels = [b.label for b in offered[0].buttons]
    assert len(labels) >= 2 and labels[1].startswith("2. ")
    chosen = chat.core.faq.get(chat.core.store.load_conversation("test", "u1")["choices"][1])  # type: ignore[index]
    assert chosen is not None
    assert chat.say("2") == chosen.answer
