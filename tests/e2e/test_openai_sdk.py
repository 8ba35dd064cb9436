"""The official openai SDK against the gateway and the fake upstream."""

import base64
import json

import openai
import pytest

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city", "days"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Time in a zone",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
        },
    },
]

# A 1x1 PNG.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
    )
).decode()


def test_non_streaming(client):
    r = client.chat.completions.create(model="fake-gpt", messages=[{"role": "user", "content": "Hello there"}])
    assert r.model == "fake-gpt"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content.startswith("Fake reply to: Hello there")
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streaming_with_usage(client):
    chunks = list(
        client.chat.completions.create(
            model="fake-gpt",
            messages=[{"role": "user", "content": "Stream please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1, "exactly one usage chunk"
    assert chunks[-1] is usage_chunks[0] and chunks[-1].choices == []
    assert usage_chunks[0].usage.completion_tokens > 0
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Fake reply to: Stream please")
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]


def test_streaming_without_usage(client):
    chunks = list(
        client.chat.completions.create(
            model="fake-gpt", messages=[{"role": "user", "content": "No usage"}], stream=True
        )
    )
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_tool_calls_non_streaming_and_second_turn(client):
    messages = [{"role": "user", "content": "Weather and time in Paris?"}]
    r = client.chat.completions.create(model="fake-gpt", messages=messages, tools=TOOLS)
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in msg.tool_calls] == ["get_weather", "get_time"]
    args = json.loads(msg.tool_calls[0].function.arguments)
    assert set(args) == {"city", "days"}
    messages.append(msg.model_dump(exclude_none=True))
    for call in msg.tool_calls:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"})
    r2 = client.chat.completions.create(model="fake-gpt", messages=messages, tools=TOOLS)
    assert r2.choices[0].message.content.startswith("Tool result received")


def test_tool_calls_streamed_arguments_reassemble(client):
    stream = client.chat.completions.create(
        model="fake-gpt",
        messages=[{"role": "user", "content": "Weather?"}],
        tools=TOOLS,
        stream=True,
    )
    calls: dict[int, dict] = {}
    pieces = 0
    for chunk in stream:
        if not chunk.choices:
            continue
        for tc in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(tc.index, {"id": None, "name": None, "args": ""})
            if tc.id:
                entry["id"] = tc.id
            if tc.function and tc.function.name:
                entry["name"] = tc.function.name
            if tc.function and tc.function.arguments:
                entry["args"] += tc.function.arguments
                pieces += 1
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    assert all(calls[i]["id"] for i in calls)
    assert pieces >= 6, "arguments arrive as several deltas"
    for entry in calls.values():
        assert isinstance(json.loads(entry["args"]), dict)


def test_image_content_parts(client):
    r = client.chat.completions.create(
        model="fake-gpt",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these images?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
                ],
            }
        ],
    )
    assert r.choices[0].message.content


def test_invalid_image_is_a_bad_request(client):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="fake-gpt",
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://nope"}}]}],
        )


def test_error_classes(stack, client):
    bad = openai.OpenAI(base_url=stack.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.chat.completions.create(model="fake-gpt", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 401
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="err-429", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="err-500", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="err-upstream-auth", messages=[{"role": "user", "content": "x"}])
    assert e.value.body["code"] == "upstream_auth_failed"
    # Streaming errors before any content are ordinary HTTP errors too.
    with pytest.raises(openai.RateLimitError):
        list(client.chat.completions.create(model="err-429", messages=[{"role": "user", "content": "x"}], stream=True))


def test_failover_hides_broken_targets(client):
    for _ in range(20):
        r = client.chat.completions.create(model="failover", messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content


def test_models_listing(client):
    ids = [m.id for m in client.models.list()]
    assert ids[:2] == ["fake-gpt", "err-429"]
