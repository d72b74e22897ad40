"""What a run caches per process (persona scans, validated settings, the approval rule) follows
every change it must: a persona file edited between runs, another PERSONAS_HOME, a spec changed in
code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from klaviyo_sandbox import Sandbox
from personas.kernel.config import Config
from personas.kernel.errors import UsageProblem
from personas.kernel.governance import approval_rule
from personas.kernel.spec import ApprovalPolicy
from personas.runtime import build_context
from personas.runtime.loader import BUILTIN_DIR, PersonaConfigError, load_persona, scan_personas

SHIPPED = "lead-magnet-sequencer"


def own_copy(home: Path, **changes: object) -> Path:
    """The shipped sequencer as ``home``'s own (same name: it replaces the shipped one), with ``changes``."""
    data = yaml.safe_load((BUILTIN_DIR / f"{SHIPPED}.yaml").read_text(encoding="utf-8"))
    data.update(changes)
    folder = home / "personas"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{SHIPPED}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_an_edited_persona_file_is_read_again_in_the_same_process(tmp_path: Path) -> None:
    path = own_copy(tmp_path, description="first")
    assert load_persona(SHIPPED, home=tmp_path).description == "first"
    assert load_persona(SHIPPED, home=tmp_path).description == "first"
    own_copy(tmp_path, description="second, longer")
    assert load_persona(SHIPPED, home=tmp_path).description == "second, longer"
    path.unlink()
    assert load_persona(SHIPPED, home=tmp_path).source == str((BUILTIN_DIR / f"{SHIPPED}.yaml").resolve())


def test_an_edit_that_keeps_the_modification_time_is_read_again(tmp_path: Path) -> None:
    """A copy that preserves times (``cp -p``, an archive, a coarse file system) changes the size."""
    path = own_copy(tmp_path, description="one")
    stamp = os.stat(path).st_mtime_ns
    assert load_persona(SHIPPED, home=tmp_path).description == "one"
    own_copy(tmp_path, description="another one")
    os.utime(path, ns=(stamp, stamp))
    assert load_persona(SHIPPED, home=tmp_path).description == "another one"


def test_each_home_has_its_own_personas(tmp_path: Path) -> None:
    own_copy(tmp_path / "a", description="home a")
    own_copy(tmp_path / "b", description="home b")
    assert load_persona(SHIPPED, home=tmp_path / "a").description == "home a"
    assert load_persona(SHIPPED, home=tmp_path / "b").description == "home b"
    assert load_persona(SHIPPED, home=tmp_path / "a").description == "home a"
    assert load_persona(SHIPPED, home=None).source == str((BUILTIN_DIR / f"{SHIPPED}.yaml").resolve())


def test_a_new_file_and_a_fixed_one_are_seen(tmp_path: Path) -> None:
    assert "my-helper" not in scan_personas(tmp_path).personas
    (tmp_path / "personas").mkdir()
    helper = tmp_path / "personas" / "my-helper.yaml"
    helper.write_text("name: my-helper\ncolour: blue\n", encoding="utf-8")
    with pytest.raises(PersonaConfigError):
        load_persona("my-helper", home=tmp_path)
    helper.write_text("name: my-helper\ndescription: Reads lists.\ngraph: chat\nprompt: klaviyo_assistant.v1.md\n"
                      "scopes: [lists:read]\ntools:\n  include: [get_lists]\n", encoding="utf-8")
    assert load_persona("my-helper", home=tmp_path).scopes == ["lists:read"]


def test_a_scan_returned_can_be_changed_without_changing_the_next(tmp_path: Path) -> None:
    first = scan_personas(tmp_path)
    first.personas.clear()
    first.errors.append(PersonaConfigError("x.yaml", 1, "name", "made up"))
    again = scan_personas(tmp_path)
    assert SHIPPED in again.personas and not again.errors


def test_settings_follow_the_persona_file_and_the_spec(tmp_path: Path) -> None:
    client = Sandbox(demo_data=False, rate_limit_factor=None).client()
    config = Config.from_env().replace(home=tmp_path)
    shipped = load_persona(SHIPPED, home=tmp_path)
    settings = dict(shipped.settings)
    own_copy(tmp_path, settings={**settings, "recheck_after": 111})
    first = build_context(SHIPPED, config=config, client=client, audit=False)
    assert first.settings.recheck_after == 111
    assert build_context(SHIPPED, config=config, client=client, audit=False).settings is first.settings
    own_copy(tmp_path, settings={**settings, "recheck_after": 222})
    assert build_context(SHIPPED, config=config, client=client, audit=False).settings.recheck_after == 222
    spec = load_persona(SHIPPED, home=tmp_path)
    changed = spec.model_copy(update={"settings": {**settings, "recheck_after": 333}})
    assert build_context(changed, config=config, client=client, audit=False).settings.recheck_after == 333
    assert build_context(spec, config=config, client=client, audit=False).settings.recheck_after == 222


def test_the_approval_rule_follows_the_policy() -> None:
    few, many = ApprovalPolicy(max_profiles_per_call=5), ApprovalPolicy(max_profiles_per_call=500)
    assert approval_rule(few) != approval_rule(many)
    assert "5" in approval_rule(few) and "500" in approval_rule(many)
    assert approval_rule(ApprovalPolicy(mode="writes")) == "Every call that writes waits for the user's approval."


def test_the_config_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path / "a"))
    first = Config.from_env()
    assert Config.from_env() is first and first.home == tmp_path / "a"
    monkeypatch.setenv("PERSONAS_HOME", str(tmp_path / "b"))
    assert Config.from_env().home == tmp_path / "b"
    monkeypatch.setenv("PERSONAS_MODEL", "gpt-x")
    assert Config.from_env().model == "gpt-x"
    monkeypatch.delenv("PERSONAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "someone"))
    assert Config.from_env().home == tmp_path / "someone" / ".personas"
    assert Config.from_env({"PERSONAS_USER": "ann"}).user == "ann"
    monkeypatch.setenv("HOME", str(tmp_path / "else"))
    assert Config.from_env({"PERSONAS_USER": "ann"}).home == tmp_path / "else" / ".personas"
    for _ in range(2):  # a refused value is refused every time
        with pytest.raises(UsageProblem):
            Config.from_env({"KLAVIYO_BASE_URL": "ftp://nowhere"})


def test_a_submission_as_state_is_asdicts_copy() -> None:
    from dataclasses import asdict

    from graphs.lead_magnet.inputs import Submission

    answers = {"role": "Trip leader", "tags": ["a", {"b": (1, 2)}], "n": 3, "ok": True, "x": None, "f": 1.5}
    sub = Submission("e1", "p1", "a@b.example.com", "Form submitted", None, "F1", None, answers,
                     {"location": {"city": "Oslo"}})
    plain = sub.to_json()
    assert plain == asdict(sub) and type(plain["answers"]["tags"][1]["b"]) is tuple
    plain["answers"]["tags"][1]["b"] = "changed"
    plain["profile_attributes"]["location"]["city"] = "Bergen"
    assert sub.answers["tags"][1]["b"] == (1, 2) and sub.profile_attributes["location"]["city"] == "Oslo"


def test_guards_ask_the_innermost_scope_check_and_keep_an_override() -> None:
    from klaviyo_toolkit.tools import Guarded, KlaviyoToolkit, Stopped

    kit = KlaviyoToolkit(Sandbox(demo_data=False).client(), scopes=["lists:read"])
    seen: list[str] = []

    class Watch:
        def before(self, call: object) -> object:
            seen.append("watch")
            return call

    class Narrower(Guarded):
        def missing_scopes(self, op: object) -> list[str]:
            return ["narrowed"]

    stacked = kit.guarded(Watch(), Watch())
    assert stacked.missing_scopes(kit.catalog.get("get_lists")) == []
    assert stacked.missing_scopes(kit.catalog.get("get_profiles")) == ["profiles:read"]
    assert isinstance(stacked.run("get_profiles"), Stopped) and seen == []  # denied: no guard is asked
    narrowed = Guarded(Narrower(kit, Watch()), Watch())
    assert narrowed.missing_scopes(kit.catalog.get("get_lists")) == ["narrowed"]
