"""Every client SDK against every backend adapter, through the gateway.

Clients: openai, anthropic and google-genai, each used the way its own docs
show. Backends: the `via-<backend>` models of conftest's Stack, served by the
openai, anthropic and gemini adapters in front of the fake upstream, which
validates every request like the real API and answers deterministically (see
host/orch-fake-upstream/src/lib.rs), so replies are asserted exactly.
"""

import base64
import json
import math
import urllib.request

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from conftest import CLIENT_KEY

CLIENTS = ("openai", "anthropic", "genai")
BACKENDS = ("openai", "anthropic", "gemini")
COMBOS = [pytest.param(c, b, id=f"{c}-to-{b}") for c in CLIENTS for b in BACKENDS]

# A 1x1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)
PNG_B64 = base64.b64encode(PNG).decode()

# The tools every tool test declares; the fake calls both, in order, with
# every required property filled in (strings "example", integers 1).
TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
    {
        "name": "get_time",
        "description": "Time in a zone",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
    },
]
EXPECTED_ARGS = {"get_weather": {"city": "example", "days": 1}, "get_time": {"tz": "example"}}
RESULTS = {"get_weather": "sunny, 21C in Paris", "get_time": "09:30 CET"}

# The fake's output token count for a text of at least this many characters.
CHUNKS = 8


def prompt_tokens(text: str) -> int:
    """The fake's prompt token count for a text-only prompt."""
    return max(1, math.ceil(len(text) / 4))


def acknowledgement(backend: str) -> str:
    """The fake's reply after the results of both tools. Its OpenAI dialect
    quotes the last tool message; Anthropic and Gemini quote every result."""
    if backend == "openai":
        return f"Tool result received: {RESULTS['get_time']}"
    return f"Tool result received: {RESULTS['get_weather']}; {RESULTS['get_time']}"


class Reply:
    """What a client got back, in one shape for every SDK."""

    def __init__(self, text, input_tokens, output_tokens, finish):
        self.text = text
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.finish = finish

    def __repr__(self):
        return f"Reply({self.text!r}, in={self.input_tokens}, out={self.output_tokens}, finish={self.finish!r})"


# ---------------------------------------------------------------------------
# One driver per SDK: the same operations, written in each SDK's own idiom.
# ---------------------------------------------------------------------------


class OpenAIDriver:
    FINISH_TEXT = "stop"

    def __init__(self, stack):
        self.client = openai.OpenAI(base_url=stack.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30)

    def text(self, model, prompt):
        r = self.client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}])
        assert r.model == model
        assert r.choices[0].message.role == "assistant"
        u = r.usage
        assert u.total_tokens == u.prompt_tokens + u.completion_tokens
        return Reply(r.choices[0].message.content, u.prompt_tokens, u.completion_tokens, r.choices[0].finish_reason)

    def stream(self, model, prompt):
        chunks = list(
            self.client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": prompt}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert chunks[0].choices[0].delta.role == "assistant"
        usage = [c for c in chunks if c.usage is not None]
        assert len(usage) == 1 and chunks[-1] is usage[0] and chunks[-1].choices == [], "one usage chunk, at the end"
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert len(finish) == 1
        u = usage[0].usage
        return Reply(text, u.prompt_tokens, u.completion_tokens, finish[0])

    @staticmethod
    def _tools():
        return [{"type": "function", "function": t} for t in TOOLS]

    def tool_round_trip(self, model):
        """Returns ({name: args} of the calls, the final text)."""
        messages = [{"role": "user", "content": "Weather and time in Paris?"}]
        r = self.client.chat.completions.create(model=model, messages=messages, tools=self._tools())
        msg = r.choices[0].message
        assert r.choices[0].finish_reason == "tool_calls"
        assert all(c.id and c.type == "function" for c in msg.tool_calls)
        calls = [(c.function.name, json.loads(c.function.arguments)) for c in msg.tool_calls]
        messages.append(msg.model_dump(exclude_none=True))
        for call in msg.tool_calls:
            messages.append({"role": "tool", "tool_call_id": call.id, "content": RESULTS[call.function.name]})
        r2 = self.client.chat.completions.create(model=model, messages=messages, tools=self._tools())
        assert r2.choices[0].finish_reason == "stop"
        return calls, r2.choices[0].message.content

    def streamed_tool_calls(self, model):
        stream = self.client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Weather and time in Paris?"}],
            tools=self._tools(),
            stream=True,
        )
        calls: dict[int, dict] = {}
        finish = []
        for chunk in stream:
            if not chunk.choices:
                continue
            if chunk.choices[0].finish_reason:
                finish.append(chunk.choices[0].finish_reason)
            for tc in chunk.choices[0].delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"id": None, "name": None, "args": ""})
                if tc.id:
                    assert entry["id"] is None, "the id comes once"
                    entry["id"] = tc.id
                if tc.function and tc.function.name:
                    entry["name"] = tc.function.name
                if tc.function and tc.function.arguments:
                    entry["args"] += tc.function.arguments
        assert finish == ["tool_calls"]
        assert all(calls[i]["id"] for i in calls)
        return [(calls[i]["name"], json.loads(calls[i]["args"])) for i in sorted(calls)]

    def image(self, model, prompt):
        r = self.client.chat.completions.create(
            model=model,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": prompt},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                    ],
                }
            ],
        )
        return r.choices[0].message.content

    def call(self, model, stream=False):
        r = self.client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], stream=stream)
        if stream:
            list(r)

    def stream_pieces(self, model, prompt):
        for chunk in self.client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], stream=True
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content

    def check_broken_stream(self, excinfo):
        # An `error` object inside the stream (the HTTP status was 200).
        assert excinfo.type is openai.APIError
        assert excinfo.value.code == "upstream_unavailable"

    def check_not_found(self, excinfo):
        assert excinfo.type is openai.NotFoundError
        assert excinfo.value.status_code == 404

    def check_rate_limited(self, excinfo):
        assert excinfo.type is openai.RateLimitError
        assert excinfo.value.status_code == 429

    def check_server_error(self, excinfo):
        assert isinstance(excinfo.value, openai.InternalServerError)
        assert excinfo.value.status_code >= 500


class AnthropicDriver:
    FINISH_TEXT = "end_turn"

    def __init__(self, stack):
        self.client = anthropic.Anthropic(
            base_url=stack.gateway_origin, api_key=CLIENT_KEY, max_retries=0, timeout=30
        )

    def text(self, model, prompt):
        r = self.client.messages.create(model=model, max_tokens=256, messages=[{"role": "user", "content": prompt}])
        assert r.model == model and r.role == "assistant" and r.type == "message"
        assert [b.type for b in r.content] == ["text"]
        return Reply(r.content[0].text, self._input(r.usage), r.usage.output_tokens, r.stop_reason)

    @staticmethod
    def _input(usage):
        # Anthropic's input_tokens leave out cache reads and writes.
        return usage.input_tokens + (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0)

    def stream(self, model, prompt):
        with self.client.messages.stream(
            model=model, max_tokens=256, messages=[{"role": "user", "content": prompt}]
        ) as stream:
            events = list(stream)
            final = stream.get_final_message()
        types_ = [e.type for e in events]
        assert types_[0] == "message_start" and types_[-1] == "message_stop", types_
        deltas = [e for e in events if e.type == "message_delta"]
        assert len(deltas) == 1 and deltas[0].usage.output_tokens == final.usage.output_tokens
        text = "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")
        assert [b.type for b in final.content] == ["text"] and final.content[0].text == text
        return Reply(text, self._input(final.usage), final.usage.output_tokens, final.stop_reason)

    @staticmethod
    def _tools():
        return [{"name": t["name"], "description": t["description"], "input_schema": t["parameters"]} for t in TOOLS]

    def tool_round_trip(self, model):
        messages = [{"role": "user", "content": "Weather and time in Paris?"}]
        r = self.client.messages.create(model=model, max_tokens=1024, messages=messages, tools=self._tools())
        assert r.stop_reason == "tool_use"
        uses = [b for b in r.content if b.type == "tool_use"]
        assert all(u.id for u in uses)
        messages.append({"role": "assistant", "content": r.content})
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": u.id, "content": RESULTS[u.name]} for u in uses],
            }
        )
        r2 = self.client.messages.create(model=model, max_tokens=1024, messages=messages, tools=self._tools())
        assert r2.stop_reason == "end_turn"
        assert [b.type for b in r2.content] == ["text"]
        return [(u.name, u.input) for u in uses], r2.content[0].text

    def streamed_tool_calls(self, model):
        with self.client.messages.stream(
            model=model,
            max_tokens=1024,
            messages=[{"role": "user", "content": "Weather and time in Paris?"}],
            tools=self._tools(),
        ) as stream:
            final = stream.get_final_message()
        assert final.stop_reason == "tool_use"
        uses = [b for b in final.content if b.type == "tool_use"]
        assert all(u.id for u in uses)
        return [(u.name, u.input) for u in uses]

    def image(self, model, prompt):
        r = self.client.messages.create(
            model=model,
            max_tokens=256,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": prompt},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                    ],
                }
            ],
        )
        return r.content[0].text

    def call(self, model, stream=False):
        if stream:
            with self.client.messages.stream(
                model=model, max_tokens=16, messages=[{"role": "user", "content": "x"}]
            ) as s:
                list(s)
        else:
            self.client.messages.create(model=model, max_tokens=16, messages=[{"role": "user", "content": "x"}])

    def stream_pieces(self, model, prompt):
        with self.client.messages.stream(
            model=model, max_tokens=256, messages=[{"role": "user", "content": prompt}]
        ) as stream:
            yield from stream.text_stream

    def check_broken_stream(self, excinfo):
        # An `error` event inside the stream (the HTTP status was 200).
        assert excinfo.type is anthropic.APIStatusError and excinfo.value.status_code == 200
        assert excinfo.value.body["error"]["type"] == "api_error"

    def check_not_found(self, excinfo):
        assert excinfo.type is anthropic.NotFoundError
        assert excinfo.value.status_code == 404

    def check_rate_limited(self, excinfo):
        assert excinfo.type is anthropic.RateLimitError
        assert excinfo.value.status_code == 429

    def check_server_error(self, excinfo):
        assert isinstance(excinfo.value, anthropic.InternalServerError)
        assert excinfo.value.status_code >= 500


class GenAIDriver:
    FINISH_TEXT = types.FinishReason.STOP

    def __init__(self, stack):
        self.client = genai.Client(
            api_key=CLIENT_KEY,
            http_options=types.HttpOptions(
                base_url=stack.gateway_origin,
                api_version="v1beta",
                timeout=30_000,
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )

    def text(self, model, prompt):
        r = self.client.models.generate_content(model=model, contents=prompt)
        u = r.usage_metadata
        assert u.total_token_count == u.prompt_token_count + u.candidates_token_count
        return Reply(r.text, u.prompt_token_count, u.candidates_token_count, r.candidates[0].finish_reason)

    def stream(self, model, prompt):
        chunks = list(self.client.models.generate_content_stream(model=model, contents=prompt))
        text = "".join(c.text or "" for c in chunks)
        finishes = [c.candidates[0].finish_reason for c in chunks if c.candidates and c.candidates[0].finish_reason]
        assert len(finishes) == 1 and chunks[-1].candidates[0].finish_reason, "the finish reason comes last"
        u = chunks[-1].usage_metadata
        assert u is not None, "the last chunk reports usage"
        return Reply(text, u.prompt_token_count, u.candidates_token_count, finishes[0])

    @staticmethod
    def _config(**kwargs):
        return types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=[types.FunctionDeclaration(**t) for t in TOOLS])],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            **kwargs,
        )

    def tool_round_trip(self, model):
        contents = [types.Content(role="user", parts=[types.Part.from_text(text="Weather and time in Paris?")])]
        r = self.client.models.generate_content(model=model, contents=contents, config=self._config())
        calls = r.function_calls
        assert calls
        contents.append(r.candidates[0].content)
        contents.append(
            types.Content(
                role="user",
                parts=[
                    types.Part(
                        function_response=types.FunctionResponse(
                            id=c.id, name=c.name, response={"result": RESULTS[c.name]}
                        )
                    )
                    for c in calls
                ],
            )
        )
        r2 = self.client.models.generate_content(model=model, contents=contents, config=self._config())
        assert not r2.function_calls
        return [(c.name, c.args) for c in calls], r2.text

    def streamed_tool_calls(self, model):
        chunks = list(
            self.client.models.generate_content_stream(
                model=model, contents="Weather and time in Paris?", config=self._config()
            )
        )
        return [(c.name, c.args) for chunk in chunks for c in (chunk.function_calls or [])]

    def image(self, model, prompt):
        r = self.client.models.generate_content(
            model=model, contents=[prompt, types.Part.from_bytes(data=PNG, mime_type="image/png")]
        )
        return r.text

    def call(self, model, stream=False):
        if stream:
            list(self.client.models.generate_content_stream(model=model, contents="x"))
        else:
            self.client.models.generate_content(model=model, contents="x")

    def stream_pieces(self, model, prompt):
        for chunk in self.client.models.generate_content_stream(model=model, contents=prompt):
            if chunk.text:
                yield chunk.text

    def check_broken_stream(self, excinfo):
        # An error object as the stream's last element (the HTTP status was 200).
        assert excinfo.type is genai_errors.ServerError
        assert excinfo.value.code == 502 and excinfo.value.status == "INTERNAL"

    def check_not_found(self, excinfo):
        assert excinfo.type is genai_errors.ClientError
        assert excinfo.value.code == 404 and excinfo.value.status == "NOT_FOUND"

    def check_rate_limited(self, excinfo):
        assert excinfo.type is genai_errors.ClientError
        assert excinfo.value.code == 429 and excinfo.value.status == "RESOURCE_EXHAUSTED"

    def check_server_error(self, excinfo):
        assert excinfo.type is genai_errors.ServerError
        assert excinfo.value.code >= 500


DRIVERS = {"openai": OpenAIDriver, "anthropic": AnthropicDriver, "genai": GenAIDriver}
SDK_ERRORS = (openai.APIError, anthropic.APIError, genai_errors.APIError)


@pytest.fixture(scope="module")
def drivers(stack):
    return {name: cls(stack) for name, cls in DRIVERS.items()}


# ---------------------------------------------------------------------------
# The 9 combinations.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("client,backend", COMBOS)
def test_text_echo(drivers, client, backend):
    d = drivers[client]
    prompt = f"echo: {client} asks {backend}: plain text"
    r = d.text(f"via-{backend}", prompt)
    assert r.text == f"{client} asks {backend}: plain text"
    assert r.finish == d.FINISH_TEXT
    assert (r.input_tokens, r.output_tokens) == (prompt_tokens(prompt), CHUNKS), r


@pytest.mark.parametrize("client,backend", COMBOS)
def test_stream_echo(drivers, client, backend):
    d = drivers[client]
    prompt = f"echo: {client} streams from {backend}, in pieces"
    r = d.stream(f"via-{backend}", prompt)
    assert r.text == f"{client} streams from {backend}, in pieces"
    assert r.finish == d.FINISH_TEXT
    assert (r.input_tokens, r.output_tokens) == (prompt_tokens(prompt), CHUNKS), r


@pytest.mark.parametrize("client,backend", COMBOS)
def test_tool_use_two_turns(drivers, client, backend):
    calls, final = drivers[client].tool_round_trip(f"via-{backend}")
    assert calls == list(EXPECTED_ARGS.items())
    assert final == acknowledgement(backend)


@pytest.mark.parametrize("client,backend", COMBOS)
def test_streamed_tool_calls(drivers, client, backend):
    assert drivers[client].streamed_tool_calls(f"via-{backend}") == list(EXPECTED_ARGS.items())


@pytest.mark.parametrize("client,backend", COMBOS)
def test_image(drivers, client, backend):
    text = drivers[client].image(f"via-{backend}", "What is in this image?")
    assert text == "Fake reply to: What is in this image? [images: 1]"


@pytest.mark.parametrize("client,backend", COMBOS)
def test_error_classes(drivers, client, backend):
    d = drivers[client]
    with pytest.raises(SDK_ERRORS) as e:
        d.call(f"no-such-model-{backend}")
    d.check_not_found(e)
    with pytest.raises(SDK_ERRORS) as e:
        d.call(f"via-{backend}-429")
    d.check_rate_limited(e)
    for status in (500, 503):
        with pytest.raises(SDK_ERRORS) as e:
            d.call(f"via-{backend}-{status}")
        d.check_server_error(e)
    # Before any content, a failing stream is an ordinary HTTP error.
    with pytest.raises(SDK_ERRORS) as e:
        d.call(f"via-{backend}-429", stream=True)
    d.check_rate_limited(e)
    with pytest.raises(SDK_ERRORS) as e:
        d.call(f"via-{backend}-500", stream=True)
    d.check_server_error(e)


@pytest.mark.parametrize("client,backend", COMBOS)
def test_stream_broken_after_content_ends_in_an_error(drivers, client, backend):
    """Once text reached the client, an upstream that breaks the connection
    ends the stream with the dialect's error, never with a clean end."""
    d = drivers[client]
    expected = f"{client} loses {backend} mid-stream: abcdefghijklmnopqrstuvwxyz"
    received = []
    with pytest.raises(SDK_ERRORS) as e:
        for piece in d.stream_pieces(f"via-{backend}-cut", f"echo: {expected}"):
            received.append(piece)
    d.check_broken_stream(e)
    text = "".join(received)
    assert text and expected.startswith(text) and text != expected, text


# ---------------------------------------------------------------------------
# Thinking signatures: an Anthropic backend's signed thinking block travels
# through another dialect and comes back unchanged on the next turn. The fake
# rejects a thinking block whose signature it did not issue with a 400.
# ---------------------------------------------------------------------------

THINKING = "Thinking about which tools to call."
# Well-formed (base64 of "sig:" + 32 hex digits) but not what the fake issued.
FORGED_SIGNATURE = base64.b64encode(b"sig:" + b"0" * 32).decode()
INVALID_SIGNATURE = "Invalid `signature` in `thinking` block"


def assert_thinking_sent_back(stack, signature):
    """The fake's last request replays the first turn's thinking block."""
    body = stack.fake_json("/_fake/last_request")["body"]
    assistant = [m for m in body["messages"] if m["role"] == "assistant"]
    assert len(assistant) == 1
    assert assistant[0]["content"][0] == {"type": "thinking", "thinking": THINKING, "signature": signature}
    assert [b["type"] for b in assistant[0]["content"][1:]] == ["tool_use", "tool_use"]
    assert body["thinking"]["type"] == "enabled"


def openai_thinking_turns(client, messages, first):
    """Appends `first` (the assistant message as returned, with its
    thinking_blocks extension) and the tool results to `messages`."""
    messages.append(first)
    for call in first["tool_calls"]:
        messages.append({"role": "tool", "tool_call_id": call["id"], "content": RESULTS[call["function"]["name"]]})
    return client.chat.completions.create(
        model="via-anthropic", messages=messages, tools=OpenAIDriver._tools(), reasoning_effort="low"
    )


def test_thinking_signature_round_trip_openai_client(stack, drivers):
    client = drivers["openai"].client
    question = [{"role": "user", "content": "Weather and time in Paris?"}]
    r = client.chat.completions.create(
        model="via-anthropic", messages=question, tools=OpenAIDriver._tools(), reasoning_effort="low"
    )
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in msg.tool_calls] == ["get_weather", "get_time"]
    first = msg.model_dump(exclude_none=True)
    assert first["reasoning_content"] == THINKING
    [block] = first["thinking_blocks"]
    assert block["type"] == "thinking" and block["thinking"] == THINKING and block["signature"]

    r2 = openai_thinking_turns(client, list(question), first)
    assert r2.choices[0].message.content == acknowledgement("anthropic")
    assert_thinking_sent_back(stack, block["signature"])

    forged = json.loads(json.dumps(first))
    forged["thinking_blocks"][0]["signature"] = FORGED_SIGNATURE
    with pytest.raises(openai.BadRequestError) as e:
        openai_thinking_turns(client, list(question), forged)
    assert e.value.status_code == 400
    assert INVALID_SIGNATURE in e.value.message


def test_thinking_signature_round_trip_openai_client_streamed(stack, drivers):
    """The signature arrives in a chunk of its own; a client that collects the
    streamed thinking_blocks deltas can send the block back."""
    client = drivers["openai"].client
    question = [{"role": "user", "content": "Weather and time in Paris?"}]
    stream = client.chat.completions.create(
        model="via-anthropic", messages=question, tools=OpenAIDriver._tools(), reasoning_effort="low", stream=True
    )
    reasoning, blocks, calls = "", [], {}
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta.model_dump(exclude_none=True)
        reasoning += delta.get("reasoning_content", "")
        blocks += delta.get("thinking_blocks", [])
        for tc in delta.get("tool_calls", []):
            entry = calls.setdefault(tc["index"], {"id": "", "name": "", "args": ""})
            entry["id"] += tc.get("id", "")
            entry["name"] += tc.get("function", {}).get("name", "")
            entry["args"] += tc.get("function", {}).get("arguments", "")
    # The text streams as reasoning_content, the signature in a block of its own.
    assert reasoning == THINKING
    [block] = blocks
    signature = block["signature"]
    assert block == {"type": "thinking", "thinking": "", "signature": signature} and signature
    first = {
        "role": "assistant",
        "content": None,
        "reasoning_content": reasoning,
        "thinking_blocks": [{"type": "thinking", "thinking": reasoning, "signature": signature}],
        "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["args"]}}
            for _, c in sorted(calls.items())
        ],
    }
    assert [c["function"]["name"] for c in first["tool_calls"]] == ["get_weather", "get_time"]
    r2 = openai_thinking_turns(client, list(question), first)
    assert r2.choices[0].message.content == acknowledgement("anthropic")
    assert_thinking_sent_back(stack, signature)


def genai_thinking_config():
    return GenAIDriver._config(thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=1024))


def genai_second_turn(client, question, model_content):
    contents = [question, model_content]
    calls = [p.function_call for p in model_content.parts if p.function_call]
    contents.append(
        types.Content(
            role="user",
            parts=[
                types.Part(
                    function_response=types.FunctionResponse(id=c.id, name=c.name, response={"result": RESULTS[c.name]})
                )
                for c in calls
            ],
        )
    )
    return client.models.generate_content(model="via-anthropic", contents=contents, config=genai_thinking_config())


def test_thinking_signature_round_trip_genai_client(stack, drivers):
    client = drivers["genai"].client
    question = types.Content(role="user", parts=[types.Part.from_text(text="Weather and time in Paris?")])
    r = client.models.generate_content(model="via-anthropic", contents=[question], config=genai_thinking_config())
    content = r.candidates[0].content
    thoughts = [p for p in content.parts if p.thought]
    assert [(p.text, bool(p.thought_signature)) for p in thoughts] == [(THINKING, True)]
    assert [(c.name, c.args) for c in r.function_calls] == list(EXPECTED_ARGS.items())
    signature = base64.b64encode(thoughts[0].thought_signature).decode()

    r2 = genai_second_turn(client, question, content)
    assert r2.text == acknowledgement("anthropic")
    assert_thinking_sent_back(stack, signature)

    forged = content.model_copy(deep=True)
    next(p for p in forged.parts if p.thought).thought_signature = base64.b64decode(FORGED_SIGNATURE)
    with pytest.raises(genai_errors.ClientError) as e:
        genai_second_turn(client, question, forged)
    assert e.value.code == 400 and e.value.status == "INVALID_ARGUMENT"
    assert INVALID_SIGNATURE in e.value.message


def test_thinking_signature_round_trip_genai_client_streamed(stack, drivers):
    """google-genai streams parts; the client sends back the parts it got, as
    they came (thought text in pieces, the signature on a part of its own)."""
    client = drivers["genai"].client
    question = types.Content(role="user", parts=[types.Part.from_text(text="Weather and time in Paris?")])
    chunks = list(
        client.models.generate_content_stream(
            model="via-anthropic", contents=[question], config=genai_thinking_config()
        )
    )
    parts = [p for c in chunks if c.candidates and c.candidates[0].content for p in c.candidates[0].content.parts or []]
    thought_text = "".join(p.text or "" for p in parts if p.thought)
    signatures = [p.thought_signature for p in parts if p.thought_signature]
    assert thought_text == THINKING and len(signatures) == 1
    calls = [(p.function_call.name, p.function_call.args) for p in parts if p.function_call]
    assert calls == list(EXPECTED_ARGS.items())
    r2 = genai_second_turn(client, question, types.Content(role="model", parts=parts))
    assert r2.text == acknowledgement("anthropic")
    assert_thinking_sent_back(stack, base64.b64encode(signatures[0]).decode())


# ---------------------------------------------------------------------------
# Pass-through: when the client speaks the backend's dialect, fields the
# gateway does not know survive both ways. The fake records the request it
# got and adds an unknown field to its responses (OpenAI and Anthropic
# `x_fake_extension`, Gemini `xFakeExtension`, each `{"ok": true}`).
# ---------------------------------------------------------------------------

UNKNOWN_REQUEST_FIELD = {"x_unknown_request_field": {"keep": ["me", 1, None, True]}}
EXTENSION = {"ok": True}


def last_upstream_body(stack):
    return stack.fake_json("/_fake/last_request")["body"]


def sse_data(lines):
    """The JSON payloads of an SSE body's `data:` lines."""
    out = []
    for line in lines:
        if isinstance(line, bytes):
            line = line.decode()
        line = line.strip()
        if line.startswith("data:") and line[5:].strip() != "[DONE]":
            out.append(json.loads(line[5:]))
    return out


def test_passthrough_openai(stack, drivers):
    client = drivers["openai"].client
    raw = client.chat.completions.with_raw_response.create(
        model="via-openai", messages=[{"role": "user", "content": "echo: pass me"}], extra_body=UNKNOWN_REQUEST_FIELD
    )
    assert last_upstream_body(stack)["x_unknown_request_field"] == UNKNOWN_REQUEST_FIELD["x_unknown_request_field"]
    body = json.loads(raw.http_response.text)
    assert body["x_fake_extension"] == EXTENSION
    assert raw.parse().choices[0].message.content == "pass me"


def test_passthrough_anthropic(stack, drivers):
    client = drivers["anthropic"].client
    args = dict(model="via-anthropic", max_tokens=64, messages=[{"role": "user", "content": "echo: pass me"}])
    raw = client.messages.with_raw_response.create(**args, extra_body=UNKNOWN_REQUEST_FIELD)
    assert last_upstream_body(stack)["x_unknown_request_field"] == UNKNOWN_REQUEST_FIELD["x_unknown_request_field"]
    body = json.loads(raw.http_response.text)
    assert body["x_fake_extension"] == EXTENSION
    assert raw.parse().content[0].text == "pass me"

    with client.messages.with_streaming_response.create(
        **args, stream=True, extra_body={"x_unknown_request_field": "streamed"}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_data(response.iter_lines())
    assert last_upstream_body(stack)["x_unknown_request_field"] == "streamed"
    by_type = {}
    for event in events:
        by_type.setdefault(event["type"], []).append(event)
    assert by_type["message_start"][0]["message"]["x_fake_extension"] == EXTENSION
    assert [e["x_fake_extension"] for e in by_type["message_delta"]] == [EXTENSION]
    text = "".join(e["delta"].get("text", "") for e in by_type["content_block_delta"])
    assert text == "pass me"


def test_passthrough_gemini(stack, drivers):
    client = drivers["genai"].client
    config = types.GenerateContentConfig(
        should_return_http_response=True, http_options=types.HttpOptions(extra_body=UNKNOWN_REQUEST_FIELD)
    )
    r = client.models.generate_content(model="via-gemini", contents="echo: pass me", config=config)
    assert last_upstream_body(stack)["x_unknown_request_field"] == UNKNOWN_REQUEST_FIELD["x_unknown_request_field"]
    body = json.loads(r.sdk_http_response.body)
    assert body["xFakeExtension"] == EXTENSION
    assert body["candidates"][0]["content"]["parts"] == [{"text": "pass me"}]

    # google-genai has no raw access to streams: the same request by hand.
    req = urllib.request.Request(
        f"{stack.gateway_origin}/v1beta/models/via-gemini:streamGenerateContent?alt=sse",
        data=json.dumps(
            {"contents": [{"role": "user", "parts": [{"text": "echo: pass me"}]}], "xUnknownRequestField": 7}
        ).encode(),
        headers={"content-type": "application/json", "x-goog-api-key": CLIENT_KEY},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = sse_data(resp.read().decode().splitlines())
    assert last_upstream_body(stack)["xUnknownRequestField"] == 7
    assert len(events) > 1
    assert all(e["xFakeExtension"] == EXTENSION for e in events)
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events) == "pass me"

    # The SDK's own stream still parses (it drops what it does not know).
    chunks = list(
        client.models.generate_content_stream(
            model="via-gemini",
            contents="echo: pass me",
            config=types.GenerateContentConfig(http_options=types.HttpOptions(extra_body={"xUnknownRequestField": 8})),
        )
    )
    assert last_upstream_body(stack)["xUnknownRequestField"] == 8
    assert "".join(c.text for c in chunks) == "pass me"


# ---------------------------------------------------------------------------
# The other way: a Gemini backend signs its first function call
# (`thoughtSignature`); OpenAI and Anthropic clients must hand it back on the
# call it belongs to. The fake rejects a missing signature and a signature it
# did not issue with a 400.
# ---------------------------------------------------------------------------

CORRUPTED_SIGNATURE = "Corrupted thought signature."


def assert_call_signature_sent_back(stack, signature):
    """The fake's last request carries `signature` on the first functionCall
    of the model turn, and on no other part."""
    body = stack.fake_json("/_fake/last_request")["body"]
    [model_turn] = [c for c in body["contents"] if c["role"] == "model"]
    signed = [
        (p.get("functionCall", {}).get("name"), p["thoughtSignature"])
        for p in model_turn["parts"]
        if "thoughtSignature" in p
    ]
    assert signed == [("get_weather", signature)], model_turn


def test_gemini_thought_signature_round_trip_openai_client(stack, drivers):
    client = drivers["openai"].client
    question = [{"role": "user", "content": "Weather and time in Paris?"}]

    def second_turn(first):
        messages = list(question) + [first]
        for call in first["tool_calls"]:
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": RESULTS[call["function"]["name"]]})
        return client.chat.completions.create(
            model="via-gemini", messages=messages, tools=OpenAIDriver._tools(), reasoning_effort="low"
        )

    r = client.chat.completions.create(
        model="via-gemini", messages=question, tools=OpenAIDriver._tools(), reasoning_effort="low"
    )
    first = r.choices[0].message.model_dump(exclude_none=True)
    assert first["reasoning_content"] == THINKING
    calls = first["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    signature = calls[0]["extra_content"]["google"]["thought_signature"]
    assert signature and "extra_content" not in calls[1]

    r2 = second_turn(first)
    assert r2.choices[0].message.content == acknowledgement("gemini")
    assert_call_signature_sent_back(stack, signature)

    forged = json.loads(json.dumps(first))
    forged["tool_calls"][0]["extra_content"]["google"]["thought_signature"] = FORGED_SIGNATURE
    with pytest.raises(openai.BadRequestError) as e:
        second_turn(forged)
    assert CORRUPTED_SIGNATURE in e.value.message


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_gemini_thought_signature_round_trip_anthropic_client(stack, drivers, stream):
    """The Anthropic dialect has no field for a function call's signature;
    the gateway puts the canonical `extra_content` on the tool_use block,
    which the anthropic SDK keeps and sends back with the block."""
    client = drivers["anthropic"].client
    args = dict(
        model="via-gemini",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=AnthropicDriver._tools(),
    )
    question = [{"role": "user", "content": "Weather and time in Paris?"}]
    if stream:
        with client.messages.stream(**args, messages=question) as s:
            r = s.get_final_message()
    else:
        r = client.messages.create(**args, messages=question)
    assert r.stop_reason == "tool_use"
    uses = [b for b in r.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == list(EXPECTED_ARGS.items())
    extra = uses[0].model_dump().get("extra_content")
    assert extra is not None, "the function call's thought signature reached the client"
    signature = extra["google"]["thought_signature"]

    def second_turn(content):
        messages = list(question) + [
            {"role": "assistant", "content": content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": u.id, "content": RESULTS[u.name]} for u in uses],
            },
        ]
        return client.messages.create(**args, messages=messages)

    r2 = second_turn(r.content)
    assert [b.text for b in r2.content if b.type == "text"] == [acknowledgement("gemini")]
    assert_call_signature_sent_back(stack, signature)

    forged = [b.model_copy(deep=True) for b in r.content]
    next(b for b in forged if b.type == "tool_use").extra_content["google"]["thought_signature"] = FORGED_SIGNATURE
    with pytest.raises(anthropic.BadRequestError) as e:
        second_turn(forged)
    assert CORRUPTED_SIGNATURE in e.value.message
