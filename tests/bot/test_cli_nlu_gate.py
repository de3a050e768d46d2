"""`tongxin nlu train --gate` and `tongxin nlu models list|use` as an operator
runs them: the labels in the data folder are trained on, a harmful set is
refused with both sets of figures (exit status 1), and a rollback works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from nlu.classifier import METADATA_FILE
from nlu.parser import Parser
from nlu.training_data import default_data_paths, load_training_data
from tests.bot.workspace.review_fixtures import private_model_dir


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def labels(intent: str, texts: list[str]) -> str:
    lines = "".join(f"    - {t}\n" for t in texts)
    return f'version: "3.1"\nnlu:\n- intent: {intent}\n  examples: |\n{lines}'


def test_gate_accepts_refuses_and_rolls_back(
    nlu_parser: Parser, model_dir: Path, tmp_path: Path
) -> None:
    models = private_model_dir(model_dir, tmp_path / "model")
    labelled = tmp_path / "data" / "nlu" / "reviewed.yml"
    labelled.parent.mkdir(parents=True)
    env = {
        **os.environ,
        "TONGXIN_MODEL_DIR": str(models),
        "TONGXIN_DATA_DIR": str(tmp_path / "data"),
        "TONGXIN_DB": str(tmp_path / "t.db"),
    }
    labelled.write_text(labels("service_info", ["那个补贴咋领", "残疾证在哪儿办"]), "utf-8")
    good = run(["nlu", "train", "--gate"], env)
    assert good.returncode == 0, good.stderr
    assert "current " in good.stdout and "candidate " in good.stdout
    assert "accepted" in good.stdout and "as v2" in good.stdout
    listed = json.loads(run(["nlu", "models", "list", "--json"], env).stdout)
    assert [(v["version"], v["current"]) for v in listed] == [("v2", True), ("v1", False)]
    assert listed[0]["n_examples"] == listed[1]["n_examples"] + 2

    data, _ = load_training_data(default_data_paths())
    disputes = [e.text for e in data.examples if e.intent == "dispute_mediation"][:200]
    labelled.write_text(labels("thanks", disputes), "utf-8")
    before = (models / METADATA_FILE).read_bytes()
    bad = run(["nlu", "train", "--gate"], env)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "refused" in bad.stdout and "drops from" in bad.stdout
    rows = [
        line.split()
        for line in bad.stdout.splitlines()
        if line.split()[:1] in (["current"], ["candidate"])
    ]
    assert len(rows) == 2 and rows[0][1:] != rows[1][1:]  # both sets of figures, different
    assert (models / METADATA_FILE).read_bytes() == before

    used = run(["nlu", "models", "use", "v1"], env)
    assert used.returncode == 0 and "v1 is now the current model" in used.stdout
    listed = json.loads(run(["nlu", "models", "list", "--json"], env).stdout)
    assert [v["version"] for v in listed if v["current"]] == ["v1"]
    missing = run(["nlu", "models", "use", "v7"], env)
    assert missing.returncode == 2 and "no model version v7" in missing.stderr
