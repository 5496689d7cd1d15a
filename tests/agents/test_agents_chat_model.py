"""Choosing the chat model: which backend, how the client is configured, what the CLI says."""

from __future__ import annotations

import pytest
from fakes import SleepyChatModel
from langchain_openai import ChatOpenAI

from imageforge.agents.chat_model import PLACEHOLDER_API_KEY, describe_llm, load_chat_model


@pytest.fixture(autouse=True)
def no_openai_environment(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(name, raising=False)


def test_local_endpoint_gets_a_configured_client_and_a_placeholder_key():
    llm = load_chat_model(
        backend="auto",
        model="qwen2.5:7b",
        base_url="http://127.0.0.1:11434/v1",
        api_key=None,
        timeout_s=12.5,
        max_retries=3,
    )
    assert isinstance(llm, ChatOpenAI)
    assert llm.model_name == "qwen2.5:7b"
    assert llm.openai_api_base == "http://127.0.0.1:11434/v1"
    assert llm.transient_retries == 3 and llm.request_timeout == 12.5
    client = llm.root_async_client  # the timeout is the client's; retries are agents.structured's
    assert str(client.base_url).startswith("http://127.0.0.1:11434/v1")
    assert client.max_retries == 0 and client.timeout == 12.5
    assert client.api_key == PLACEHOLDER_API_KEY


def test_openai_backend_with_a_key_uses_that_key():
    llm = load_chat_model(
        backend="openai",
        model="gpt-4o-mini",
        base_url=None,
        api_key="sk-test",
        timeout_s=30,
        max_retries=0,
    )
    assert isinstance(llm, ChatOpenAI)
    assert llm.openai_api_key.get_secret_value() == "sk-test"
    assert llm.transient_retries == 0 and llm.max_retries == 0


def test_heuristic_backend_and_unconfigured_auto_give_no_llm():
    assert (
        load_chat_model(
            backend="heuristic",
            model="x",
            base_url="http://127.0.0.1:1/v1",
            api_key="k",
            timeout_s=5,
            max_retries=1,
        )
        is None
    )
    assert (
        load_chat_model(
            backend="auto",
            model="gpt-4o-mini",
            base_url=None,
            api_key=None,
            timeout_s=5,
            max_retries=1,
        )
        is None
    )


def test_openai_backend_without_endpoint_or_key_is_refused_clearly():
    with pytest.raises(ValueError, match="neither `base_url` nor `api_key`"):
        load_chat_model(
            backend="openai",
            model="gpt-4o-mini",
            base_url=None,
            api_key=None,
            timeout_s=5,
            max_retries=1,
        )


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"backend": "anthropic"}, "backend"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"max_retries": -1}, "max_retries"),
        ({"model": " "}, "model"),
    ],
)
def test_bad_arguments_are_named(kwargs, argument):
    base = {
        "backend": "openai",
        "model": "m",
        "base_url": "http://127.0.0.1:1/v1",
        "api_key": None,
        "timeout_s": 5.0,
        "max_retries": 1,
    }
    with pytest.raises(ValueError, match=f"`{argument}`"):
        load_chat_model(**{**base, **kwargs})


def test_describe_llm_says_which_agents_answer_and_how_to_switch():
    assert describe_llm(None) == (
        "LLM: heuristic agents (offline). Set IMAGEFORGE_LLM__BASE_URL or OPENAI_API_KEY to use an LLM."
    )
    llm = load_chat_model(
        backend="auto",
        model="gpt-4o-mini",
        base_url="https://llm.example.test/v1",
        api_key="k",
        timeout_s=5,
        max_retries=1,
    )
    assert describe_llm(llm) == "LLM: gpt-4o-mini at https://llm.example.test/v1"
    no_url = load_chat_model(
        backend="openai",
        model="gpt-4o-mini",
        base_url=None,
        api_key="k",
        timeout_s=5,
        max_retries=1,
    )
    assert describe_llm(no_url) == "LLM: gpt-4o-mini at https://api.openai.com/v1"
    assert describe_llm(SleepyChatModel()) == "LLM: sleepy-fake (SleepyChatModel)"


def test_each_chat_model_has_its_own_async_http_client():
    from imageforge.agents.chat_model import load_chat_model

    one = load_chat_model(backend="openai", model="m", base_url="http://127.0.0.1:9/v1")
    two = load_chat_model(backend="openai", model="m", base_url="http://127.0.0.1:9/v1")
    assert one.http_async_client is not None and one.http_async_client is not two.http_async_client
