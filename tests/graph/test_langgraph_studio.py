"""The graphs under LangGraph's own server, as LangGraph Studio drives them.

`langgraph dev` (without --allow-blocking, so blockbuster refuses blocking calls) runs from
the isolated .venv-langgraph (langgraph-api pins a jsonschema stack that breaks schemathesis
here); this test, in the project's venv, talks to it through langgraph-sdk. Every graph in
langgraph.json answers its schema and drawing endpoints; the storyboard runs from a concept
alone; the assistant runs with no service attached, acting on the embedded runner.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LANGGRAPH = ROOT / ".venv-langgraph" / "bin" / "langgraph"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


OFFLINE = {"llm": "heuristic", "generator": "sketch", "scoring": {"scorers": ["offline"]}, "device": "cpu"}


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`langgraph dev` on a free port; (base URL, its log file)."""
    if not LANGGRAPH.exists():
        pytest.skip(f"{LANGGRAPH} is absent: create .venv-langgraph (see .ci/run) to run the LangGraph server test")
    port = free_port()
    log = tmp_path_factory.mktemp("langgraph-dev") / "server.log"
    env = {**os.environ, "LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGSMITH_TRACING": "false", "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(LANGGRAPH), "dev", "--no-browser", "--no-reload", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"langgraph dev exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"langgraph dev did not answer within 120 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _no_blocking_errors(log: Path) -> None:
    text = log.read_text(errors="replace")
    assert "BlockingError" not in text and "Blocking call" not in text, text[-3000:]


async def test_every_graph_answers_its_schema_and_drawing(dev_server: tuple[str, Path]) -> None:
    from langgraph_sdk import get_client

    url, log = dev_server
    client = get_client(url=url)
    graphs = set(json.loads((ROOT / "langgraph.json").read_text())["graphs"])
    assistants = {a["graph_id"]: a for a in await client.assistants.search(limit=50)}
    assert graphs <= set(assistants)
    for graph_id in graphs:
        assistant_id = assistants[graph_id]["assistant_id"]
        schemas = await client.assistants.get_schemas(assistant_id)
        for name in ("input_schema", "output_schema", "state_schema", "context_schema"):
            assert schemas[name], (graph_id, name)
        assert {"trace_root", "backends"} <= set(schemas["context_schema"]["properties"]), graph_id
        drawn = await client.assistants.get_graph(assistant_id, xray=True)
        assert drawn["nodes"], graph_id
    _no_blocking_errors(log)


async def test_the_storyboard_runs_from_a_concept_alone(dev_server: tuple[str, Path], tmp_path: Path) -> None:
    from langgraph_sdk import get_client

    url, log = dev_server
    client = get_client(url=url)
    thread = await client.threads.create()
    output = await client.runs.wait(
        thread["thread_id"],
        "storyboard",
        input={"concept": "Artisan coffee that starts your morning right", "num_scenes": 2},
        context={"trace_root": str(tmp_path), "backends": OFFLINE, "settings": {"num_variations": 2, "resolution": 96}},
    )
    assert isinstance(output, dict) and output.get("error") is None, output
    generation_id = output["generation_id"]
    assert generation_id == thread["thread_id"]  # made from the thread, so a resumed thread keeps its folder
    assert sorted(output["results"]) == ["1", "2"]
    assert (tmp_path / generation_id / "scene_2" / "image_1.png").is_file()
    assert json.loads((tmp_path / generation_id / "summary.json").read_text())["status"] == "completed"
    _no_blocking_errors(log)


async def test_the_assistant_runs_standalone_on_the_embedded_runner(
    dev_server: tuple[str, Path], tmp_path: Path
) -> None:
    from langgraph_sdk import get_client

    url, log = dev_server
    client = get_client(url=url)
    thread = await client.threads.create()
    context = {"trace_root": str(tmp_path), "backends": OFFLINE}

    async def say(text: str) -> dict:
        values = await client.runs.wait(
            thread["thread_id"], "assistant", input={"messages": [{"role": "user", "content": text}]}, context=context
        )
        assert isinstance(values, dict) and "__error__" not in values, values
        return values

    started = await say("make a 2 scene storyboard about artisan coffee")
    generation_id = started["generation_id"]
    assert generation_id and "Started storyboard" in started["messages"][-1]["content"]
    deadline = time.monotonic() + 90
    while True:
        status = await say("how is it going?")
        reply = status["messages"][-1]["content"]
        if "is completed" in reply:
            break
        assert "failed" not in reply and time.monotonic() < deadline, reply
        await asyncio.sleep(1)
    assert "2 of 2 scenes finished" in reply
    explained = await say("why did scene 1 win?")
    assert explained["messages"][-1]["content"].startswith("Scene 1:")
    assert (tmp_path / generation_id / "scene_1" / "selected_best.txt").is_file()
    _no_blocking_errors(log)
