"""The provider key must appear nowhere: not in logs (even at debug level),
error bodies, or the database."""

import tempfile
from pathlib import Path

import openai

from conftest import CANARY, CLIENT_KEY, JS_MODEL, Stack, http_json


def test_canary_never_leaks():
    with tempfile.TemporaryDirectory() as d:
        stack = Stack(Path(d), log_level="debug")
        bodies = []
        try:
            client = openai.OpenAI(base_url=stack.base_url, api_key=CLIENT_KEY, max_retries=0)
            client.chat.completions.create(model="fake-gpt", messages=[{"role": "user", "content": "hi"}])
            list(client.chat.completions.create(model="fake-gpt", messages=[{"role": "user", "content": "hi"}], stream=True))
            # The JavaScript adapter's provider holds the canary too.
            for model in ["err-429", "err-500", "err-upstream-auth", "failover", "missing", JS_MODEL, f"{JS_MODEL}-429"]:
                status, body = http_json(f"{stack.base_url}/chat/completions", {"model": model, "messages": [{"role": "user", "content": "x"}]})
                bodies.append(body)
            status, body = http_json(f"{stack.base_url}/chat/completions", {"model": "fake-gpt"}, key=CANARY)
            assert status == 401
            bodies.append(body)
            # The Anthropic and Gemini providers hold the canary too (sent as
            # x-api-key and x-goog-api-key), reached from every dialect.
            for backend in ("anthropic", "gemini"):
                for model in (f"via-{backend}", f"via-{backend}-429", f"via-{backend}-500"):
                    user = {"role": "user", "content": "x"}
                    for url, payload in (
                        (f"{stack.base_url}/chat/completions", {"model": model, "messages": [user]}),
                        (f"{stack.base_url}/messages", {"model": model, "max_tokens": 8, "messages": [user]}),
                        (
                            f"{stack.gateway_origin}/v1beta/models/{model}:generateContent",
                            {"contents": [{"role": "user", "parts": [{"text": "x"}]}]},
                        ),
                    ):
                        status, body = http_json(url, payload)
                        assert (status == 200) == (model == f"via-{backend}"), (url, model, status, body)
                        bodies.append(body)
        finally:
            stack.stop()
        assert stack.fake.output() is not None
        logs = stack.gateway.output()
        assert "request finished" in logs, "debug logging was on"
        assert CANARY not in logs
        for body in bodies:
            assert CANARY not in body
        for f in Path(d).glob("gateway.db*"):
            assert CANARY.encode() not in f.read_bytes(), f.name
        assert any(Path(d).glob("gateway.db")), "the database exists"
