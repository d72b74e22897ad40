"""``personas`` commands for the tests, each in a process of its own, without paying its imports each time.

Most of the suite's time went to starting ``personas`` hundreds of times: about a second each, most
of it importing LangChain, LangGraph and langsmith, before the command did anything. Here a process
per pytest worker imports them once and waits on a Unix socket; each command is a fork of it that
takes the test's argv, environment, working folder and stdin/stdout/stderr (passed as file
descriptors), runs ``personas.cli.main`` and exits as the command would, through the interpreter's
own shutdown (atexit, threads, flushed output). So a test still sees a separate process: its exit
code (negative when killed by a signal), its output on real pipes, its files; nothing of our code is
replaced. What the fork shares with the warm process is only what was imported before it.

``run_personas`` is ``subprocess.run([personas, *args], capture_output=True, ...)``; it starts a
real ``personas`` process instead when the warm one would differ: ``PERSONAS_TESTS_COLD=1`` (every
command cold, to compare), an environment that changes how Python starts (``PYTHONPATH`` and the
like), or a platform without ``fork``. Tests that signal, kill or drive a command in a terminal, or
that check what a command imports, start it themselves.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import io
import json
import locale
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PERSONAS = Path(sys.executable).with_name("personas")
#: What the warm process imports before it serves: what most commands import (not matplotlib: it reads
#: the HOME it starts in, which is each test's own).
PRELOAD = (
    "personas.cli",
    "personas.cli.run",
    "personas.cli.chat",
    "personas.runtime",
    "personas.kernel.models",
    "langgraph.graph",
    "langchain_core.messages",
    "graphs.lead_magnet",
    "graphs.segment_sync",
    "graphs.campaign_report",
    "klaviyo_sandbox",
)
#: Environment variables read as Python starts: a command given other values than the warm process
#: started with runs cold. PYTHONUNBUFFERED and PYTHONIOENCODING are applied to the fork's streams.
_AT_START = ("PYTHONUNBUFFERED", "PYTHONIOENCODING")
_HEADER = struct.Struct("!Q")


def _python_start(env: Any) -> dict[str, str]:
    """The variables in ``env`` that Python reads as it starts (``PYTHONPATH``, ``PYTHONHASHSEED`` ...; not a
    library's ``PYTHON_KEYRING_BACKEND``), but the two the fork applies itself."""
    return {k: v for k, v in env.items() if k.startswith("PYTHON") and k[6:7] != "_" and k not in _AT_START}


# -- the warm process ----------------------------------------------------------------------------
def serve(path: str) -> None:
    """Import :data:`PRELOAD`, then fork a command per connection to ``path``, until killed or the process
    that started it ends."""
    import importlib

    sys.path[0] = str(PERSONAS.parent)  # as the console script has it, not the folder it started in
    for name in PRELOAD:
        importlib.import_module(name)
    # Out of the collector's sight: a fork's exit then does not walk (and copy) the warm process's
    # objects; without it a command's own interpreter shutdown took 0.3 s.
    gc.collect()
    gc.freeze()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    listener.settimeout(1.0)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    parent = os.getppid()
    while os.getppid() == parent:  # not past the pytest worker that started it, even one that crashed
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        if os.fork() == 0:
            listener.close()
            request, fds = _command(conn)  # returns only in the command's own process
            _become(request, fds)
        conn.close()


def _command(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """In a fork of the warm process: take one command, fork it, report its pid and how it ended.
    Returns (the command, its streams) only in the command's process; this one ends with ``os._exit``."""
    try:
        raw, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3)
        (size,) = _HEADER.unpack(raw)
        request = json.loads(_receive(conn, size))
        pid = os.fork()
        if pid == 0:
            conn.close()
            return request, fds
        for fd in fds:
            os.close(fd)
        conn.sendall(_HEADER.pack(pid))
        _, status = os.waitpid(pid, 0)
        conn.sendall(struct.pack("!q", os.waitstatus_to_exitcode(status)))
    except BaseException:
        os._exit(1)
    os._exit(0)


def _become(request: dict[str, Any], fds: list[int]) -> None:
    """Turn this fork into the command: its streams, environment, folder, argv and signals; then run
    ``personas.cli.main`` and leave by ``SystemExit``, so the interpreter ends as the command's would."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    env: dict[str, str] = request["env"]
    os.environ.clear()
    os.environ.update(env)
    os.chdir(request["cwd"])
    time.tzset()  # what the C library read from TZ and the locale as the warm process started, read again
    with contextlib.suppress(locale.Error):
        locale.setlocale(locale.LC_CTYPE, "")
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))
    encoding, _, errors = (env.get("PYTHONIOENCODING") or "utf-8").partition(":")

    def stream(fd: int, mode: str, errors: str) -> io.TextIOWrapper:
        raw = io.FileIO(fd, mode, closefd=False)
        writing = mode == "w"
        layer: Any = raw if writing and unbuffered else io.BufferedWriter(raw) if writing else io.BufferedReader(raw)
        return io.TextIOWrapper(layer, encoding=encoding, errors=errors, write_through=writing and unbuffered,
                                line_buffering=writing and (raw.isatty() or fd == 2))  # fmt: skip

    sys.stdin = sys.__stdin__ = stream(0, "r", errors or "strict")
    sys.stdout = sys.__stdout__ = stream(1, "w", errors or "strict")
    sys.stderr = sys.__stderr__ = stream(2, "w", errors or "backslashreplace")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    import personas.cli

    if request["module"]:  # ``python -m personas.cli``: its argv[0] and path, and it ignores what main returns
        sys.argv = [str(Path(personas.cli.__file__).with_name("__main__.py")), *request["argv"]]
        sys.path[0] = os.getcwd()
        personas.cli.main()
        raise SystemExit(0)
    sys.argv = [str(PERSONAS), *request["argv"]]
    raise SystemExit(personas.cli.main())


# -- the tests' side -----------------------------------------------------------------------------
class Gone(Exception):
    """The warm process did not take the command (it ended, or its socket is gone); nothing was run."""


class _Warm:
    """This pytest worker's warm process, started on first use and stopped when the worker ends."""

    def __init__(self) -> None:
        # A Unix socket's path has at most 107 bytes: /tmp when TMPDIR is longer
        short = "/tmp" if len(tempfile.gettempdir()) > 60 and os.path.isdir("/tmp") else None
        self.folder = tempfile.mkdtemp(prefix="personas-warm-", dir=short)
        self.path = os.path.join(self.folder, "cli.sock")
        self.base = _python_start(os.environ)
        self.served = 0  # commands forked (a test can tell a warm run from one that fell back to cold)
        code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from tests.warm_cli import serve; serve({self.path!r})"
        self.proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=dict(os.environ), text=True)  # fmt: skip
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if line.strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"the warm personas process did not start (exit {self.proc.wait()}); "
                               "PERSONAS_TESTS_COLD=1 runs each command in a process of its own")
        atexit.register(self.stop)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
            os.rmdir(self.folder)

    def differs(self, env: dict[str, str]) -> bool:
        """Whether ``env`` changes how Python starts from how the warm process started."""
        return _python_start(env) != self.base

    def run(self, cmd: list[Any], env: dict[str, str], cwd: str | Path, input: str | bytes | None,
            timeout: float | None, text: bool, errors: str | None) -> subprocess.CompletedProcess[Any]:  # fmt: skip
        args = _args(cmd) or []
        module = str(cmd[0]) != str(PERSONAS)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        if input is None:
            in_r, in_w = os.open(os.devnull, os.O_RDONLY), None
        else:
            in_r, in_w = os.pipe()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.path)
            body = json.dumps({"argv": args, "module": module, "env": env, "cwd": str(cwd)}).encode()
            socket.send_fds(conn, [_HEADER.pack(len(body))], [in_r, out_w, err_w])
            conn.sendall(body)
            self.served += 1
        except OSError:  # the warm process is gone: the caller runs the command cold
            conn.close()
            for fd in (out_r, err_r, in_w):
                if fd is not None:
                    os.close(fd)
            raise Gone from None
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        got: dict[int, bytes] = {}

        def drain(fd: int) -> None:
            with open(fd, "rb", closefd=True) as f:
                got[fd] = f.read()

        def feed() -> None:
            assert in_w is not None and input is not None
            with open(in_w, "wb", closefd=True) as f, contextlib.suppress(BrokenPipeError):
                f.write(input.encode() if isinstance(input, str) else input)

        threads = [threading.Thread(target=drain, args=(fd,), daemon=True) for fd in (out_r, err_r)]
        if in_w is not None:
            threads.append(threading.Thread(target=feed, daemon=True))
        for t in threads:
            t.start()
        conn.settimeout(timeout)
        pid = 0
        try:
            pid = _HEADER.unpack(_receive(conn, _HEADER.size))[0]
            code = struct.unpack("!q", _receive(conn, 8))[0]
            for t in threads:  # a process the command left behind may hold its output open, as with subprocess.run
                t.join(timeout)
            if any(t.is_alive() for t in threads):
                raise TimeoutError
        except TimeoutError:
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for t in threads:
                t.join(5)
            raise subprocess.TimeoutExpired(cmd, timeout or 0, got.get(out_r), got.get(err_r)) from None
        finally:
            conn.close()
        stdout, stderr = got.get(out_r, b""), got.get(err_r, b"")
        if text:  # decoded, with universal newlines, as subprocess does in text mode
            return subprocess.CompletedProcess(cmd, code, _text(stdout, errors), _text(stderr, errors))
        return subprocess.CompletedProcess(cmd, code, stdout, stderr)


def _text(data: bytes, errors: str | None) -> str:
    return data.decode("utf-8", errors or "strict").replace("\r\n", "\n").replace("\r", "\n")


def _receive(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the warm personas process closed the connection before the command ended")
        data += chunk
    return data


_warm: _Warm | None = None
_unavailable: list[str] = []  # why a warm process could not start in this worker, once it could not
_lock = threading.Lock()


#: ``python -m personas.cli``: the same command as ``personas``, but for ``sys.argv[0]`` and ``sys.path[0]``.
_MODULE = [sys.executable, "-m", "personas.cli"]


def _args(cmd: list[Any]) -> list[str] | None:
    """The command's arguments when ``cmd`` runs ``personas`` (the script, or ``python -m personas.cli``)."""
    if cmd and str(cmd[0]) == str(PERSONAS):
        return [str(a) for a in cmd[1:]]
    if [str(a) for a in cmd[:3]] == _MODULE:
        return [str(a) for a in cmd[3:]]
    return None


def run_personas(cmd: list[Any], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run(cmd, **kwargs)`` for ``cmd`` = ``[personas, *args]`` with its output captured, run as a
    fork of the warm process; anything else (another program, output not captured, a stdin given as
    a file, an environment that changes how Python starts) runs as ``subprocess.run`` would."""
    global _warm
    supported = {"env", "cwd", "input", "capture_output", "text", "timeout", "errors", "check"}
    warm = (
        not os.environ.get("PERSONAS_TESTS_COLD")
        and hasattr(os, "fork")
        and hasattr(socket, "send_fds")
        and _args(cmd) is not None
        and kwargs.get("capture_output") is True
        and set(kwargs) <= supported
    )
    env = dict(kwargs["env"]) if kwargs.get("env") is not None else dict(os.environ)
    if warm:
        with _lock:
            if _warm is None and not _unavailable:
                try:
                    _warm = _Warm()
                except (OSError, RuntimeError) as exc:  # no warm process here: every command runs cold
                    _unavailable.append(str(exc))
                    sys.stderr.write(f"tests/warm_cli.py: no warm personas process ({exc}); commands run cold\n")
        warm = _warm is not None and not _warm.differs(env)
    if not warm or _warm is None:
        return subprocess.run(cmd, **kwargs)
    try:
        done = _warm.run(cmd, env, kwargs.get("cwd") or os.getcwd(), kwargs.get("input"), kwargs.get("timeout"),
                         bool(kwargs.get("text")), kwargs.get("errors"))  # fmt: skip
    except Gone:  # started again on the next command; this one runs cold
        with _lock:
            _warm = None
        return subprocess.run(cmd, **kwargs)
    if kwargs.get("check"):
        done.check_returncode()
    return done
