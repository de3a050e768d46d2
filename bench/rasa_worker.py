"""Runs inside the Rasa venv for bench/rasa_compare.py: load a model, parse messages.

    RASA_VENV/bin/python bench/rasa_worker.py MODEL.tar.gz MESSAGES.json

MESSAGES.json is a JSON list of strings. Prints one JSON object: the seconds from
process start to a loaded model (imports included: that is what a start costs), the
seconds each message took in-process, Rasa's /model/parse answer for each, and the
peak RSS. Imports nothing of 同心 (Rasa's venv does not have it).
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402


async def parse_all(model: str, texts: list[str]) -> dict[str, Any]:
    from rasa.core.agent import Agent

    agent = Agent.load(model)
    loaded = time.perf_counter() - STARTED
    answers, seconds = [], []
    for text in texts:
        t0 = time.perf_counter()
        answer = await agent.parse_message(text)
        seconds.append(time.perf_counter() - t0)
        answers.append({k: answer.get(k) for k in ("text", "intent", "intent_ranking", "entities")})
    return {"startup_s": loaded, "seconds": seconds, "answers": answers}


def main() -> int:
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    logging.disable(logging.WARNING)
    model, messages = sys.argv[1], sys.argv[2]
    with open(messages, encoding="utf-8") as handle:
        texts = json.load(handle)
    result = asyncio.run(parse_all(model, texts))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
