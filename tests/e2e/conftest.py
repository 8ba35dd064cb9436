"""Fixtures that run the real binaries: the fake upstream and the gateway.

The binaries and the plugins folders come from the environment set by
`cargo xtask test` (ORCH_BIN, FAKE_UPSTREAM_BIN, ORCH_TEST_PLUGINS, and
ORCH_TEST_EXAMPLES for the example plugin written in JavaScript).
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORCH_BIN = Path(os.environ.get("ORCH_BIN", ROOT / "target/debug/llm-orchestrator"))
FAKE_BIN = Path(os.environ.get("FAKE_UPSTREAM_BIN", ROOT / "target/debug/fake-upstream"))
PLUGINS = Path(os.environ.get("ORCH_TEST_PLUGINS", ROOT / "target/plugins"))
EXAMPLES = Path(os.environ.get("ORCH_TEST_EXAMPLES", ROOT / "target/examples"))
# The example adapter written in JavaScript, loaded next to the bundled ones.
JS_PLUGIN = "openai-js.wasm"

CLIENT_KEY = "sk-test-client-key"
# A provider key that must never appear anywhere the gateway writes or answers.
CANARY = "sk-CANARY-" + secrets.token_hex(16)


# Backend name → (provider in the generated config, upstream model name).
BACKENDS = {
    "openai": ("fake", "fake-model"),
    "anthropic": ("fake-anthropic", "fake-claude-model"),
    "gemini": ("fake-gemini", "fake-gemini-model"),
}
# The model served through the JavaScript adapter `openai-js` (and
# `<JS_MODEL>-429`, whose upstream answers 429).
JS_MODEL = "via-openai-js"
# Upstream error statuses each backend has a `via-<backend>-<status>` model for.
ERROR_STATUSES = (429, 500, 503)
# `via-<backend>-cut`: the upstream stream breaks after this many events, a
# few content events in (the fake counts OpenAI events from the role chunk,
# Anthropic ones from message_start, ping included, and Gemini responses).
CUT_AFTER = {"openai": 3, "anthropic": 6, "gemini": 3}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


class Proc:
    def __init__(self, args, log_path: Path, env=None):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


class Stack:
    """A fake upstream and a gateway in front of it."""

    def __init__(self, workdir: Path, log_level: str = "info"):
        for binary in (ORCH_BIN, FAKE_BIN):
            if not binary.exists():
                raise RuntimeError(f"{binary} is missing; run `cargo xtask test`")
        if not (PLUGINS / "openai.wasm").exists():
            raise RuntimeError(f"{PLUGINS}/openai.wasm is missing; run `cargo xtask test`")
        if not (EXAMPLES / JS_PLUGIN).exists():
            raise RuntimeError(
                f"{EXAMPLES}/{JS_PLUGIN} is missing; run `cargo xtask test` (it needs Node.js 20+)"
            )
        self.workdir = workdir
        # The bundled plugins plus the JavaScript example, in a folder of
        # this stack's own.
        plugins = workdir / "plugins"
        plugins.mkdir(exist_ok=True)
        for component in [*PLUGINS.glob("*.wasm"), EXAMPLES / JS_PLUGIN]:
            shutil.copyfile(component, plugins / component.name)
        fake_port = free_port()
        self.fake = Proc(
            [str(FAKE_BIN), "--listen", f"127.0.0.1:{fake_port}", "--expect-key", CANARY],
            workdir / "fake.log",
        )
        self.fake_origin = f"http://127.0.0.1:{fake_port}"
        self.fake_url = f"{self.fake_origin}/v1"
        wait_http(f"{self.fake_origin}/_fake/stats")
        self.port = free_port()
        self.db = workdir / "gateway.db"
        config = workdir / "gateway.toml"
        config.write_text(
            f"""
[server]
listen = "127.0.0.1:{self.port}"
drain_delay_ms = 0
[database]
url = "sqlite://{self.db}"
[plugins]
dir = "{plugins}"
watch = false
[request_log]
flush_interval_ms = 50
[auth]
client_keys = ["env:E2E_CLIENT_KEY"]
[logging]
filter = "{log_level}"

[[providers]]
name = "fake"
adapter = "openai"
base_url = "{self.fake_url}"
api_keys = ["env:E2E_PROVIDER_KEY"]

[[providers]]
name = "wrong-key"
adapter = "openai"
base_url = "{self.fake_url}"
api_keys = ["sk-not-the-right-key-000"]

[[models]]
name = "fake-gpt"
targets = [{{ provider = "fake", model = "fake-model", weight = 1 }}]

[[models]]
name = "err-429"
targets = [{{ provider = "fake", model = "status-429", weight = 1 }}]

[[models]]
name = "err-500"
targets = [{{ provider = "fake", model = "status-500", weight = 1 }}]

[[models]]
name = "err-upstream-auth"
targets = [{{ provider = "wrong-key", model = "fake-model", weight = 1 }}]

[[models]]
name = "failover"
targets = [{{ provider = "wrong-key", model = "fake-model", weight = 5 }}, {{ provider = "fake", model = "status-500", weight = 5 }}, {{ provider = "fake", model = "fake-model", weight = 1 }}]

[[providers]]
name = "fake-anthropic"
adapter = "anthropic"
base_url = "{self.fake_origin}"
api_keys = ["env:E2E_PROVIDER_KEY"]

[[providers]]
name = "fake-gemini"
adapter = "gemini"
base_url = "{self.fake_origin}"
api_keys = ["env:E2E_PROVIDER_KEY"]

# The example adapter written in JavaScript (plugins/js/openai-js); errors
# get a provider of their own, so a key resting after a 429 rests there only.
[[providers]]
name = "fake-js"
adapter = "openai-js"
base_url = "{self.fake_url}"
api_keys = ["env:E2E_PROVIDER_KEY"]

[[providers]]
name = "fake-js-errors"
adapter = "openai-js"
base_url = "{self.fake_url}"
api_keys = ["env:E2E_PROVIDER_KEY"]
{self._backend_models()}
[[models]]
name = "{JS_MODEL}"
targets = [{{ provider = "fake-js", model = "fake-model", weight = 1 }}]

[[models]]
name = "{JS_MODEL}-429"
targets = [{{ provider = "fake-js-errors", model = "status-429", weight = 1 }}]
"""
        )
        env = dict(os.environ, E2E_CLIENT_KEY=CLIENT_KEY, E2E_PROVIDER_KEY=CANARY)
        env.pop("RUST_LOG", None)
        self.gateway = Proc([str(ORCH_BIN), "serve", "--config", str(config)], workdir / "gateway.log", env)
        self.gateway_origin = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.gateway_origin}/v1"
        try:
            # The gateway compiles every plugin before it listens; the
            # JavaScript one (12 MB) takes seconds on a busy machine.
            wait_http(f"http://127.0.0.1:{self.port}/readyz", timeout=180.0)
        except RuntimeError as e:
            self.stop()
            raise RuntimeError(f"{e}; gateway output:\n{self.gateway.output()}") from None

    @staticmethod
    def _backend_models() -> str:
        """`via-<backend>` for each provider adapter, `via-<backend>-<status>`
        models whose upstream answers with that error status, and
        `via-<backend>-cut` whose upstream stream breaks after some content."""
        out = []
        for backend, (provider, upstream) in BACKENDS.items():
            out.append(f'[[models]]\nname = "via-{backend}"\n'
                       f'targets = [{{ provider = "{provider}", model = "{upstream}", weight = 1 }}]\n')
            magic = {str(status): f"status-{status}" for status in ERROR_STATUSES}
            magic["cut"] = f"cut-after-{CUT_AFTER[backend]}"
            for suffix, upstream_magic in magic.items():
                out.append(f'[[models]]\nname = "via-{backend}-{suffix}"\n'
                           f'targets = [{{ provider = "{provider}", model = "{upstream_magic}", weight = 1 }}]\n')
        return "\n" + "\n".join(out)

    def fake_json(self, path: str):
        """A fake-upstream control endpoint (`/_fake/...`) as JSON."""
        with urllib.request.urlopen(f"{self.fake_origin}{path}", timeout=10) as r:
            return json.loads(r.read())

    def stop(self):
        self.gateway.stop()
        self.fake.stop()


@pytest.fixture(scope="session")
def stack():
    with tempfile.TemporaryDirectory() as d:
        s = Stack(Path(d))
        try:
            yield s
        finally:
            s.stop()


@pytest.fixture
def client(stack):
    import openai

    return openai.OpenAI(base_url=stack.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30)


def http_json(url: str, body: dict, key: str = CLIENT_KEY):
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
