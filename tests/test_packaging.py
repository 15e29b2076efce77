"""The core stays framework-free and light; the CLI starts."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kinguard.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FRAMEWORKS = ("langgraph", "langchain", "langchain_core", "autogen_agentchat", "autogen_core")


def test_core_imports_no_framework() -> None:
    code = (
        "import sys, kinguard, kinguard.testing\n"
        "from kinguard import KinGuard, AgentProfile\n"
        "KinGuard([AgentProfile(name='a', model='openai:gpt-4o')], identity='disassociate')\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_modules_declare_all() -> None:
    import kinguard
    import kinguard.detectors

    for module in (kinguard, kinguard.detectors):
        assert module.__all__
        for name in module.__all__:
            assert hasattr(module, name), name


def test_check_policy_reports_the_bad_field(tmp_path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text('[[rules]]\nsignal = "collusion.*"\naction = "obliterate"\n')
    result = CliRunner().invoke(app, ["check-policy", str(bad)])
    assert result.exit_code == 2
    assert "rules.0.action" in result.output


def test_demo_rejects_an_unknown_scenario_clearly() -> None:
    result = CliRunner().invoke(app, ["demo", "--scenario", "nope"])
    assert result.exit_code != 0
    assert "--scenario" in result.output


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.py")), ids=lambda path: path.name)
def test_examples_run_as_scripts_without_the_test_tools(example: Path) -> None:
    # A user's install has no pytest: an example once imported kinguard.testing, which needs it.
    code = (
        "import runpy, sys\n"
        "sys.modules['pytest'] = None\n"
        f"runpy.run_path({str(example)!r}, run_name='__main__')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "kinguard acted on" in out.stdout


def _readme_apps() -> list[str]:
    """The README's Python blocks that are whole programs (they build a guard and run it)."""
    readme = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    return [b for b in blocks if "KinGuard(" in b and re.search(r"\.(invoke|run|inspect)\(", b)]


@pytest.mark.parametrize("block", _readme_apps(), ids=lambda b: b.split("\n", 1)[0][:40])
def test_the_readmes_apps_run_as_written(block: str, tmp_path: Path) -> None:
    # Copied into a file and run as they stand, with the example policy beside them, as the
    # README tells a user to; a snippet that names a variable it never defines fails here.
    (tmp_path / "kinguard.toml").write_bytes((EXAMPLES / "kinguard.toml").read_bytes())
    (tmp_path / "app.py").write_text(block, encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "app.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "kinguard blocked a message from seller" in out.stdout or "ALERT seller" in out.stdout


def test_the_readme_has_its_runnable_apps() -> None:
    assert len(_readme_apps()) == 3  # LangGraph, AutoGen, traces and sinks
