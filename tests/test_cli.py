"""`kinguard demo` end to end on both frameworks (real graphs and teams, replayed outputs)."""

import re
import sys

import pytest
from typer.testing import CliRunner

from kinguard.cli import app


@pytest.mark.parametrize("framework", ["langgraph", "autogen"])
def test_demo_runs_offline_and_shows_what_the_guard_did(framework: str) -> None:
    result = CliRunner().invoke(
        app,
        ["demo", "--framework", framework, "--scenario", "market", "--scenario", "dilemma"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "Summary" in result.output
    assert "[kinguard blocked a message from seller" in result.output
    assert "[redacted by kinguard: kin.impersonation]" in result.output
    assert f"{framework} " in result.output
    # Alerts, and in brackets those a pager would get (the rest repeat their incident).
    assert "alerts (news)" in result.output
    assert re.search(r"│ 4 \(2\)\s+│", result.output), result.output


def test_demo_halts_for_a_human_and_rejects_when_not_interactive(tmp_path) -> None:
    policy = tmp_path / "halt.toml"
    policy.write_text('[[rules]]\nsignal = "collusion.market"\nmin_score = 0.5\naction = "halt"\n')
    result = CliRunner().invoke(
        app, ["demo", "--scenario", "market", "--policy", str(policy)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "kinguard: human review" in result.output
    assert "non-interactive demo: rejecting" in result.output


def test_interactive_demo_lets_a_human_edit_the_halted_message(tmp_path) -> None:
    policy = tmp_path / "halt.toml"
    policy.write_text('[[rules]]\nsignal = "collusion.market"\nmin_score = 0.5\naction = "halt"\n')
    result = CliRunner().invoke(
        app,
        ["demo", "--scenario", "market", "--policy", str(policy), "--interactive"],
        input="edit\nOur best price is $44.\n",
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "Our best price is $44." in result.output


def test_demo_with_an_unavailable_real_model_says_what_to_install() -> None:
    result = CliRunner().invoke(app, ["demo", "--scenario", "battle", "--model", "nosuch:model-x"])
    assert result.exit_code == 2
    assert "--model 'nosuch:model-x'" in result.output


def test_check_policy_shows_file_names_and_globs_as_written(tmp_path) -> None:
    path = tmp_path / "prod[v2].toml"
    path.write_text('[[rules]]\nsignal = "collusion.[/m]arket"\naction = "block"\n')
    result = CliRunner().invoke(app, ["check-policy", str(path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "prod[v2].toml" in result.output
    assert "collusion.[/m]arket" in result.output


def test_check_policy_reads_yaml_and_names_the_field_of_a_bad_one(tmp_path) -> None:
    good = tmp_path / "kinguard.yaml"
    good.write_text("rules:\n  - signal: collusion.market\n    action: halt\n    between: rivals\n")
    result = CliRunner().invoke(app, ["check-policy", str(good)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "collusion.market" in result.output and "halt" in result.output
    assert "between" in result.output and "rivals" in result.output
    assert "on_error=closed" in result.output
    bad = tmp_path / "bad.yml"
    bad.write_text("rules:\n  - signal: collusion.market\n    action: explode\n")
    result = CliRunner().invoke(app, ["check-policy", str(bad)])
    assert result.exit_code == 2 and "rules.0.action" in result.output


def test_a_bad_log_level_is_a_usage_error_naming_the_option() -> None:
    # Once a traceback ending in KeyError: 'BOGUS'.
    result = CliRunner().invoke(app, ["demo", "--scenario", "battle", "--log-level", "BOGUS"])
    assert result.exit_code == 2
    assert "--log-level" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("framework", ["autogen", "both"])
def test_a_real_model_with_the_autogen_demo_is_a_usage_error_before_any_run(framework: str) -> None:
    # Once a traceback (the AutoGen runner refuses --model only when awaited) and, with both
    # frameworks, paid LangGraph calls before that refusal. "nope:none" fails if it is ever run.
    result = CliRunner().invoke(
        app,
        ["demo", "--framework", framework, "--scenario", "battle", "--model", "nope:none"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 2
    assert "--model applies to LangGraph only" in result.output
    assert "Traceback" not in result.output and "Summary" not in result.output


def test_a_missing_integration_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Once "pip install 'kinguard[autogen]'", which pip cannot resolve from a checkout.
    monkeypatch.setitem(sys.modules, "kinguard_autogen", None)
    result = CliRunner().invoke(
        app, ["demo", "--framework", "autogen", "--scenario", "battle"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 2
    assert "pip install ./integrations/autogen" in result.output


@pytest.mark.parametrize("variable", [None, "OTEL_EXPORTER_OTLP_TIMEOUT"])
def test_the_demo_exports_under_a_short_time_out_unless_the_otel_variables_set_one(
    variable: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under the exporters' default 10 s, `--otlp` to a collector that is down held the demo's
    # exit ~10 s past its runs, retrying (13.4 s against 3.6 s without --otlp).
    asked: list[dict[str, object]] = []

    def configure(endpoint: str | None, **kwargs: object) -> None:
        asked.append({"endpoint": endpoint, **kwargs})

    for name in ("", "_TRACES", "_METRICS"):
        monkeypatch.delenv(f"OTEL_EXPORTER_OTLP{name}_TIMEOUT", raising=False)
    monkeypatch.setattr("kinguard.cli.configure_otlp", configure)
    env = {"COLUMNS": "200", **({variable: "30"} if variable else {})}
    result = CliRunner().invoke(
        app, ["demo", "--scenario", "dilemma", "--otlp", "http://127.0.0.1:9"], env=env
    )
    assert result.exit_code == 0, result.output
    (call,) = asked
    assert call["endpoint"] == "http://127.0.0.1:9"
    if variable:
        assert call["timeout_s"] is None  # the variable's, read by the exporters
    else:
        assert isinstance(call["timeout_s"], float) and call["timeout_s"] <= 5
