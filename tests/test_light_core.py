"""Issue 13, a light core (first part): the language and the engine load no aiohttp, the public
API loads the shells when asked for, and ``wsreplay check`` loads only its own command."""

from __future__ import annotations

import subprocess
import sys

CORE = ("wsreplay.model", "wsreplay.parser", "wsreplay.writer", "wsreplay.engine",
        "wsreplay.lint", "wsreplay.loader", "wsreplay.infer", "wsreplay.redact",
        "wsreplay.matchers", "wsreplay.report")


def loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\n"
                          "print('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return set(out.split())


def test_the_language_and_the_engine_load_no_aiohttp():
    mods = loaded_after("\n".join(f"import {m}" for m in CORE))
    assert not {m for m in mods if m.split(".")[0] in ("aiohttp", "websockets")}
    assert set(CORE) <= mods


def test_the_public_api_loads_the_shells_when_asked_for():
    mods = loaded_after("import wsreplay\nassert wsreplay.parse and wsreplay.Scenario")
    assert "aiohttp" not in mods and "wsreplay.proxy" not in mods
    mods = loaded_after("import wsreplay\nassert wsreplay.MockServer and wsreplay.RecordingProxy")
    assert {"aiohttp", "wsreplay.serve", "wsreplay.proxy"} <= mods
    mods = loaded_after("from wsreplay import *\nassert replay_scenario and write")
    assert "wsreplay.replay" in mods


def test_every_public_name_resolves_and_an_unknown_one_says_so():
    import wsreplay
    for name in wsreplay.__all__:
        assert getattr(wsreplay, name) is not None
    assert set(wsreplay.__all__) <= set(dir(wsreplay))
    try:
        wsreplay.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("an unknown name resolved")


def test_check_loads_only_its_own_command(tmp_path):
    scenario = tmp_path / "s.wsr"
    scenario.write_text("wsreplay 1\nconn c ws://127.0.0.1:9/\nc > text hi\n")
    code = ("import sys\nfrom wsreplay.cli import main\n"
            f"assert main(['check', {str(scenario)!r}]) == 0")
    mods = loaded_after(code)
    assert "aiohttp" not in mods and "wsreplay.commands.record" not in mods


def test_lint_is_the_function_whoever_imports_its_module_first():
    loaded_after("import importlib, sys\nimportlib.import_module('wsreplay.lint')\n"
                 "import wsreplay\nmodule = sys.modules['wsreplay.lint']\n"
                 "assert wsreplay.lint is module.lint and callable(wsreplay.lint)")
