"""A running server follows the current model on disk: a rollback or a gated
retraining done by another process is picked up between turns, at most every
few seconds, and a damaged model file leaves the old model serving."""

from __future__ import annotations

from pathlib import Path

from nlu.classifier import METADATA_FILE
from nlu.live_parser import LiveParser
from nlu.model_versions import archive, list_versions, make_current
from nlu.parser import Parser, load_parser
from nlu.settings import NluSettings
from tests.bot.workspace.review_fixtures import private_model_dir


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_live_parser_follows_the_current_model(
    nlu_parser: Parser, model_dir: Path, tmp_path: Path
) -> None:
    models = private_model_dir(model_dir, tmp_path / "model")
    settings = NluSettings(model_dir=models)
    parser = load_parser(settings)
    first = archive(parser.model, models, None)
    second = archive(parser.model, models, None)
    assert [v.version for v in list_versions(models)] == [second, first]
    clock = Clock()
    live = LiveParser(parser, settings, check_every_s=5.0, clock=clock)

    make_current(models, second)  # as `tongxin nlu models use` in another process
    clock.now = 4.0
    assert live.parse("你好").intent.name == "greet"
    assert live.current is parser  # not looked at before the interval is up
    clock.now = 5.5
    assert live.parse("你好").intent.name == "greet"
    assert live.current is not parser and live.current.model.metadata["version"] == second

    serving = live.current
    (models / METADATA_FILE).write_text("{ not json", encoding="utf-8")
    clock.now = 20.0
    assert live.parse("我想申请红色信贷").intent.name == "microloan"
    assert live.current is serving  # the damaged file changed nothing
    make_current(models, first)
    assert live.reload_if_changed() and live.current.model.metadata["version"] == first
