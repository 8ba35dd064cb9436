"""The example adapter written in JavaScript (`openai-js`, plugins/js/openai-js)
through the official openai SDK: it answers like the Rust `openai` adapter
serving the same fake upstream (`fake-gpt`)."""

import openai
import pytest

from conftest import JS_MODEL


def ask(client, model, **kwargs):
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hello from the JS test"}], **kwargs
    )


def test_js_non_streaming(client):
    r = ask(client, JS_MODEL)
    assert r.model == JS_MODEL
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content.startswith("Fake reply to: Hello from the JS test")
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    rust = ask(client, "fake-gpt")
    assert r.choices[0].message.content == rust.choices[0].message.content
    assert r.usage == rust.usage


def streamed(client, model):
    chunks = list(ask(client, model, stream=True, stream_options={"include_usage": True}))
    usage = [c.usage for c in chunks if c.usage is not None]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    return chunks, text, finish, usage


def test_js_streaming(client):
    chunks, text, finish, usage = streamed(client, JS_MODEL)
    assert {c.model for c in chunks} == {JS_MODEL}
    assert text.startswith("Fake reply to: Hello from the JS test")
    assert finish == ["stop"]
    assert len(usage) == 1 and chunks[-1].choices == [], "exactly one usage chunk, last"
    assert usage[0].completion_tokens > 0
    _, rust_text, rust_finish, rust_usage = streamed(client, "fake-gpt")
    assert (text, finish, usage) == (rust_text, rust_finish, rust_usage)


def test_js_upstream_errors_keep_their_class(client):
    with pytest.raises(openai.RateLimitError) as e:
        ask(client, f"{JS_MODEL}-429")
    assert e.value.status_code == 429
    with pytest.raises(openai.RateLimitError):
        list(ask(client, f"{JS_MODEL}-429", stream=True))
