"""The review queue end to end over HTTP: residents' unclear messages collect
(masked, deduplicated, counted), staff label them, an admin runs the gated
retraining: a good one becomes the current model (and the running server uses
it), a harmful one is refused with both sets of figures, and a rollback brings
an earlier version back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from starlette.testclient import TestClient

from bot.app import Core
from bot.cli.data_cmds import DATA_CHECKS, run_checks
from bot.web import create_app
from flows.messages import IncomingMessage
from flows.review import ReviewQueue
from flows.review_labels import faq_labels_path, nlu_labels_path
from nlu.classifier import METADATA_FILE
from nlu.parser import Parser
from nlu.training_data import default_data_paths, load_training_data
from tests.bot.workspace.conftest import login
from tests.bot.workspace.review_fixtures import ID_NUMBER, PHONE, review_core


@pytest.fixture
def rcore(tmp_path: Path, nlu_parser: Parser, model_dir: Path) -> Iterator[Core]:
    core = review_core(tmp_path, model_dir)
    yield core
    core.close()


def client_for(core: Core, name: str) -> tuple[TestClient, dict[str, str]]:
    client = TestClient(create_app(core, []), base_url="http://testserver")
    return client, {"X-CSRF-Token": login(client, name)}


def say(core: Core, user: str, text: str) -> str:
    msg = IncomingMessage(channel="shell", user_id=user, text=text)
    return "\n".join(r.text for r in core.dispatcher.handle(msg))


def wait_for_retrain(client: TestClient) -> dict:
    deadline = time.monotonic() + 240
    while True:
        job = client.get("/staff/api/review/retrain").json()
        if not job["running"]:
            return job
        assert time.monotonic() < deadline, "the retraining did not finish"
        time.sleep(0.2)


def test_unclear_messages_are_masked_deduplicated_and_counted(rcore: Core) -> None:
    unclear = f"我身份证{ID_NUMBER}，电话{PHONE}，那个补贴咋领"
    say(rcore, "r1", unclear)
    say(rcore, "r2", unclear.replace("，", " ") + "！！")  # same message, other punctuation
    say(rcore, "r3", "残疾证怎么办理")
    say(rcore, "r4", "你好")  # understood: not for review

    viewer, _ = client_for(rcore, "查看员")
    items = viewer.get("/staff/api/review/items").json()
    texts = {i["text"]: i for i in items}
    masked = [i for i in items if "补贴" in i["text"]]
    assert len(masked) == 1 and masked[0]["count"] == 2
    assert ID_NUMBER not in masked[0]["text"] and PHONE not in masked[0]["text"]
    assert "1101" in masked[0]["text"] and "139****5678" in masked[0]["text"]
    assert masked[0]["guesses"]["intents"], "the bot's best guesses are kept"
    assert texts["残疾证怎么办理"]["kind"] == "faq"  # asked, and nothing answered it
    assert not any(i["text"] == "你好" for i in items)
    assert items[0]["count"] >= items[-1]["count"]  # most frequent first
    only_faq = viewer.get("/staff/api/review/items?kind=faq").json()
    assert {i["kind"] for i in only_faq} == {"faq"}

    # No byte of the database (nor its WAL) holds the ID number, in any writing.
    rcore.store.checkpoint()
    db = rcore.settings.db_path
    raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*") if p.is_file())
    for form in (ID_NUMBER, ID_NUMBER.lower(), ID_NUMBER[:-1]):
        assert form.encode() not in raw and form.encode("utf-16-le") not in raw


def test_label_retrain_refuse_and_roll_back(rcore: Core) -> None:
    data_dir = rcore.settings.data_dir
    model_dir = rcore.settings.nlu.resolved_model_dir()
    say(rcore, "r1", "残疾证怎么办理")
    say(rcore, "r2", "那个补贴咋领")
    queue = ReviewQueue(rcore.store)
    by_text = {i.text: i for i in queue.items()}
    disability, subsidy = by_text["残疾证怎么办理"], by_text["那个补贴咋领"]

    viewer, viewer_csrf = client_for(rcore, "查看员")
    staff, staff_csrf = client_for(rcore, "王律师")
    admin, admin_csrf = client_for(rcore, "admin")
    label = f"/staff/api/review/items/{subsidy.key}/label"
    body = {"action": "intent", "value": "service_info"}
    assert viewer.post(label, json=body, headers=viewer_csrf).status_code == 403
    assert staff.post(label, json=body).status_code == 403  # no CSRF token
    bad = staff.post(label, json={"action": "intent", "value": "no_such"}, headers=staff_csrf)
    assert bad.status_code == 400 and "unknown intent" in bad.json()["error"]
    res = staff.post(label, json=body, headers=staff_csrf)
    assert res.status_code == 200 and res.json()["label"] == "service_info"
    faq_label = f"/staff/api/review/items/{disability.key}/label"
    res = staff.post(
        faq_label, json={"action": "faq", "value": "service.privacy"}, headers=staff_csrf
    )
    assert res.status_code == 200

    # The labels are in the operator's data folder, in formats the checks accept.
    nlu_file = nlu_labels_path(data_dir)
    nlu_doc = yaml.safe_load(nlu_file.read_text(encoding="utf-8"))
    assert nlu_doc["nlu"] == [{"intent": "service_info", "examples": "- 那个补贴咋领\n"}]
    phrasings = yaml.safe_load(faq_labels_path(data_dir).read_text(encoding="utf-8"))
    assert phrasings == {"service.privacy": ["残疾证怎么办理"]}
    results = run_checks(DATA_CHECKS, {}, {"TONGXIN_DATA_DIR": str(data_dir)})
    assert not [p for name in ("nlu", "faq") for p in results[name] if p.level == "error"]
    # Re-labelled as "needs a new FAQ entry": out of the phrasings, into the list.
    res = staff.post(faq_label, json={"action": "new_faq"}, headers=staff_csrf)
    assert res.json()["status"] == "new_faq"
    assert yaml.safe_load(faq_labels_path(data_dir).read_text(encoding="utf-8")) in ({}, None)
    csv_text = viewer.get("/staff/review/needed-faq.csv").text
    assert "残疾证怎么办理" in csv_text

    # Only an admin retrains.
    assert staff.post("/staff/api/review/retrain", headers=staff_csrf).status_code == 403
    assert admin.post("/staff/api/review/retrain", headers=admin_csrf).status_code == 202
    job = wait_for_retrain(admin)
    assert job["error"] is None, job
    good = job["result"]
    assert good["accepted"] is True and good["version"] == "v2"
    assert good["before"]["accuracy"] > 0.8 and good["after"]["macro_f1"] > 0.8
    versions = admin.get("/staff/api/review/models").json()
    assert [v["version"] for v in versions] == ["v2", "v1"]  # v1: the model from before
    assert versions[0]["current"] and versions[0]["figures"] == good["after"]
    assert rcore.live is not None and rcore.live.current.model.metadata["version"] == "v2"
    # The running server parses with the new model, labels included.
    assert rcore.live.parse("那个补贴咋领").intent.name == "service_info"

    # Many wrong labels (neighbour disputes labelled as thanks) make the model
    # worse on the held-out file: refused, with both figures, nothing changes.
    data, _ = load_training_data(default_data_paths())
    disputes = [e.text for e in data.examples if e.intent == "dispute_mediation"][:200]
    for text in disputes:
        queue.record("intent", text, rcore.live.parse(text))
    for item in queue.items(limit=1000):
        url = f"/staff/api/review/items/{item.key}/label"
        wrong = {"action": "intent", "value": "thanks"}
        assert staff.post(url, json=wrong, headers=staff_csrf).status_code == 200
    current_before = (model_dir / METADATA_FILE).read_bytes()
    assert admin.post("/staff/api/review/retrain", headers=admin_csrf).status_code == 202
    job = wait_for_retrain(admin)
    refused = job["result"]
    assert refused["accepted"] is False and refused["version"] is None
    assert refused["before"] == good["after"]
    worse = refused["after"]
    assert worse["accuracy"] < refused["before"]["accuracy"] or (
        worse["macro_f1"] < refused["before"]["macro_f1"]
    )
    assert "drops" in refused["reason"]
    assert (model_dir / METADATA_FILE).read_bytes() == current_before
    assert [v["version"] for v in admin.get("/staff/api/review/models").json()] == ["v2", "v1"]
    assert rcore.live.current.model.metadata["version"] == "v2"
    # A restart does not slip the refused labels in either: they wait for a gate.
    from nlu.parser import ensure_model

    assert ensure_model(rcore.settings.nlu, rcore.live.current.tokenizer).metadata["version"] == (
        "v2"
    )

    # Roll back to the model from before, as an admin only.
    use_v1 = "/staff/api/review/models/v1/use"
    assert staff.post(use_v1, headers=staff_csrf).status_code == 403
    res = admin.post(use_v1, headers=admin_csrf)
    assert res.status_code == 200 and res.json()["current"] is True
    assert rcore.live.current.model.metadata["version"] == "v1"
    missing = admin.post("/staff/api/review/models/v9/use", headers=admin_csrf)
    assert missing.status_code == 400 and "v9" in missing.json()["error"]
    for c in (viewer, staff, admin):
        c.close()
