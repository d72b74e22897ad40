"""klaviyo_toolkit._stack: a call made with room on CPython's frame stack (``roomy``), a first import
made that way with the garbage collector paused (``heavy_import``), and the toolkit's LangChain import
made through it; the ``personas`` command's collector threshold (the figures are in
benchmarks/toolkit_import.py and personas/cli/__init__.py, not here)."""

from __future__ import annotations

import gc
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from klaviyo_toolkit._stack import ROOM_SLOTS, gc_paused, heavy_import, roomy

ROOT = Path(__file__).resolve().parents[1]


def test_roomy_passes_arguments_result_and_errors_through() -> None:
    assert roomy(divmod, 17, 5) == (3, 2)
    assert roomy(dict, a=1) == {"a": 1}
    with pytest.raises(ZeroDivisionError):
        roomy(divmod, 1, 0)


@pytest.mark.skipif(platform.python_implementation() != "CPython", reason="frames in chunks are CPython's")
def test_the_call_is_made_from_a_frame_that_declares_the_room() -> None:
    seen: list[int] = []

    def inner() -> None:
        caller = sys._getframe(1)
        seen.append(caller.f_code.co_stacksize)

    roomy(inner)
    assert seen and seen[0] >= ROOM_SLOTS
    inner()  # called plainly, its caller declares no such stack
    assert seen[1] < ROOM_SLOTS


def test_the_toolkit_imports_langchain_only_when_a_tool_is_built_and_through_roomy() -> None:
    # A fresh interpreter: listing operations imports no LangChain; the first tool imports it once,
    # from the frame roomy calls from (seen by a meta-path finder watching langchain_core.tools.base).
    code = textwrap.dedent(
        """
        import sys
        seen = []
        class Watch:
            def find_spec(self, name, path=None, target=None):
                if name == "langchain_core.tools.base":
                    frame = sys._getframe(1)
                    while frame is not None and frame.f_code.co_name != "_roomy_call":
                        frame = frame.f_back
                    seen.append(frame is not None)
                return None
        sys.meta_path.insert(0, Watch())
        from klaviyo_toolkit.tools import KlaviyoToolkit
        kit = KlaviyoToolkit(scopes="*", api_key="pk_test_00000000000000000000")
        assert [op.operation_id for op in kit.operations()][:1], "no operations"
        assert "langchain_core" not in sys.modules, "listing imported LangChain"
        tools = kit.get_tools()
        assert len(tools) == 345 and seen == [True], seen
        from klaviyo_toolkit.tools import KlaviyoTool
        assert type(tools[0]) is KlaviyoTool
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_heavy_import_pauses_the_collector_for_the_import_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A module that records, while it is being imported, whether the collector runs and from where.
    (tmp_path / "stack_probe_mod.py").write_text(
        "import gc, sys\n"
        "collecting = gc.isenabled()\n"
        "frame = sys._getframe(1)\n"
        "while frame is not None and frame.f_code.co_name != '_roomy_call':\n"
        "    frame = frame.f_back\n"
        "through_roomy = frame is not None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert gc.isenabled()
    module = heavy_import("stack_probe_mod")
    try:
        assert module.collecting is False and module.through_roomy is True
        assert gc.isenabled(), "on again after the import"
    finally:
        sys.modules.pop("stack_probe_mod", None)
    with pytest.raises(ModuleNotFoundError):
        heavy_import("stack_probe_no_such_module")
    assert gc.isenabled(), "on again after a failed import"


def test_gc_paused_leaves_a_collector_that_was_off_off() -> None:
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled(), "the process turned it off: it stays off"
    finally:
        gc.enable()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_personas_command_raises_the_collectors_first_threshold_and_never_lowers_it() -> None:
    code = textwrap.dedent(
        """
        import gc, sys
        from personas.cli import GC_FIRST_THRESHOLD, main
        before = gc.get_threshold()
        try:
            main(["--version"])
        except SystemExit:
            pass
        raised = gc.get_threshold()
        gc.set_threshold(GC_FIRST_THRESHOLD * 3, 5, 5)
        try:
            main(["--version"])
        except SystemExit:
            pass
        print(before[0], raised[0], raised[1:] == before[1:], gc.get_threshold() == (GC_FIRST_THRESHOLD * 3, 5, 5))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    default, raised, rest_kept, higher_kept = done.stdout.split()[-4:]
    from personas.cli import GC_FIRST_THRESHOLD

    assert int(default) < GC_FIRST_THRESHOLD == int(raised)
    assert rest_kept == "True" and higher_kept == "True"
