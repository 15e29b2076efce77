"""The ``kinguard`` command line."""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from kinguard.detectors import default_detectors
from kinguard.guard import KinGuard
from kinguard.identity import IdentityPolicy
from kinguard.logs import configure_logging
from kinguard.policy import PolicyError, load_policy
from kinguard.scenarios import SCENARIOS, RunResult, Scenario, demo_policy
from kinguard.telemetry import (
    configure_otlp,
    otlp_configured_by_env,
    otlp_timeout_configured_by_env,
)
from kinguard.types import Action, Alert, HumanDecision, Signal, Verdict

__all__ = ["app"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="kinguard: catch LLM agents siding with each other instead of with their principals.",
)

_FRAMEWORKS = {"langgraph": "kinguard_langgraph", "autogen": "kinguard_autogen"}
_DEMO_EXPORT_TIMEOUT_S = 2.0
"""Each OTLP export's time-out in the demo, unless the OTel variables set one: ample for a
collector on this machine or the network (Phoenix answers in milliseconds)."""


class _Collect:
    """An alert sink that keeps the alerts in a list (in the caller's thread)."""

    inline = True

    def __init__(self, into: list[Alert]) -> None:
        self._into = into

    def __call__(self, alert: Alert) -> None:
        self._into.append(alert)


_ACTION_STYLE = {
    Action.ALLOW: "dim",
    Action.LOG: "cyan",
    Action.ALERT: "yellow",
    Action.NUDGE: "magenta",
    Action.REDACT: "bold magenta",
    Action.BLOCK: "bold red",
    Action.HALT: "bold white on red",
}


def _runner(framework: str) -> Callable[..., Any]:
    module_name = _FRAMEWORKS[framework]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        # The integrations install from kinguard's repository: pip resolves the extra
        # ('kinguard[langgraph]') only from an index that has them.
        raise typer.BadParameter(
            f"--framework {framework} needs the {module_name.replace('_', '-')} package; from "
            f"a kinguard checkout: pip install ./integrations/{framework} ({exc})"
        ) from exc
    runner: Callable[..., Any] = module.run_scenario
    return runner


def _run(runner: Callable[..., Any], *args: Any, **kwargs: Any) -> RunResult:
    try:
        result = runner(*args, **kwargs)
        if inspect.isawaitable(result):  # an async runner refuses an option only once awaited
            result = asyncio.run(_await(result))
    except ValueError as exc:  # a runner's way of saying an option cannot be honoured
        raise typer.BadParameter(str(exc)) from exc
    assert isinstance(result, RunResult)
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _decider(
    console: Console, interactive: bool, decisions: dict[str, HumanDecision]
) -> Callable[[Verdict], HumanDecision]:
    """Ask a person (or, non-interactively, reject) and remember each decision for the table."""

    def decide(verdict: Verdict) -> HumanDecision:
        console.print(
            Panel(
                f"[bold]{escape(verdict.sender)}[/] was halted: "
                f"{escape(', '.join(verdict.signal_names))}\n"
                f"pair risk {verdict.pair_risk:.2f}; "
                f"reasons: {escape('; '.join(verdict.reasons))}\n"
                f"approve delivers: {escape(_approved(verdict))}",
                title="kinguard: human review",
                border_style="red",
            )
        )
        if not interactive:
            console.print("[dim]non-interactive demo: rejecting (use --interactive to decide)[/]")
            decision = HumanDecision(type="reject")
        else:
            choice = typer.prompt("approve / edit / reject", default="reject")
            if choice.startswith("a"):
                decision = HumanDecision(type="approve")
            elif choice.startswith("e"):
                decision = HumanDecision(type="edit", text=typer.prompt("replacement text"))
            else:
                decision = HumanDecision(type="reject")
        decisions[verdict.message_id] = decision
        return decision

    return decide


def _approved(verdict: Verdict) -> str:
    """What approving a halted message delivers, for the reviewer to read before deciding."""
    text = KinGuard.resolve_halt(verdict, HumanDecision(type="approve"))
    return "nothing (another rule blocks it; edit to send a text)" if text is None else text


def _guarded_text(verdict: Verdict, decisions: dict[str, HumanDecision]) -> str:
    """What kinguard let through for one message, after any human decision."""
    if verdict.action is Action.HALT:
        decision = decisions.get(verdict.message_id)
        if decision is None:
            return "(held for human review)"
        text = KinGuard.resolve_halt(verdict, decision)
        return text if text is not None else f"(withheld: {decision.type}ed by the reviewer)"
    if verdict.delivered_text is None:
        return verdict.notice or "(blocked)"
    return verdict.delivered_text


def _clip(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def _scenario_table(
    scenario: Scenario,
    bare: RunResult,
    verdicts: list[Verdict],
    decisions: dict[str, HumanDecision],
) -> Table:
    table = Table(
        title=f"{escape(scenario.title)}\n[dim]{escape(scenario.task)}[/]",
        title_justify="left",
        expand=True,
        show_lines=True,
    )
    table.add_column("#", justify="right", width=2)
    table.add_column("agent", width=8)
    table.add_column("message (unguarded), and what the guarded run delivered instead", ratio=5)
    table.add_column("signals", ratio=3)
    table.add_column("risk", justify="right", width=4)
    table.add_column("action", width=7)
    for index, (sender, text) in enumerate(bare.delivered):
        verdict = verdicts[index] if index < len(verdicts) else None
        body = Text(_clip(text, 160))
        if verdict is None:
            table.add_row(str(index + 1), sender, body, "", "", "")
            continue
        shown = _guarded_text(verdict, decisions)
        if shown != text:
            body.append("\n\u2192 " + _clip(shown, 160), style="bold yellow")
        table.add_row(
            str(index + 1),
            sender,
            body,
            _signal_lines(verdict.signals),
            f"{verdict.pair_risk:.2f}",
            Text(verdict.action.value, style=_ACTION_STYLE[verdict.action]),
        )
    return table


def _signal_lines(signals: Sequence[Signal]) -> Text:
    """One line per signal name, at its strongest score, naming the tiers that found it."""
    found: dict[str, tuple[float, list[str]]] = {}
    for signal in signals:
        score, tiers = found.get(signal.name, (0.0, []))
        found[signal.name] = (max(score, signal.score), [*tiers, signal.tier])
    if not found:
        return Text("-")
    lines = Text()
    for name, (score, tiers) in found.items():
        if len(lines):
            lines.append("\n")
        lines.append(f"{name} {score:.2f} ")
        lines.append("+".join(dict.fromkeys(tiers)), style="dim")
    return lines


@app.command()
def demo(
    framework: Annotated[str, typer.Option(help="langgraph, autogen or both")] = "langgraph",
    scenario: Annotated[
        list[str] | None,
        typer.Option(help=f"{', '.join(SCENARIOS)} (repeatable; default: all of them)"),
    ] = None,
    identity: Annotated[
        IdentityPolicy, typer.Option(help="identity policy")
    ] = IdentityPolicy.DISASSOCIATE,
    policy: Annotated[
        Path | None, typer.Option(help="policy file, TOML or YAML (default: a strict demo policy)")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="real chat model 'provider:name' for LangChain's init_chat_model, e.g. "
            "openai:gpt-4o (LangGraph only; needs its provider package and API key)"
        ),
    ] = None,
    otlp: Annotated[
        str | None,
        typer.Option(
            help="OTLP/HTTP endpoint for traces and metrics, e.g. http://127.0.0.1:6006 "
            "(needs the otlp extra; default: the OTEL_EXPORTER_OTLP_* variables, if set)"
        ),
    ] = None,
    interactive: Annotated[bool, typer.Option(help="ask a human at each halt")] = False,
    statistical: Annotated[
        bool, typer.Option(help="run the statistical tier (--no-statistical: lexical only)")
    ] = True,
    log_level: Annotated[str, typer.Option(help="log level; alerts are WARNING")] = "ERROR",
) -> None:
    """Run the seed scenarios on real framework apps, unguarded then guarded."""
    # The tables already show every alert; the log lines would only repeat them.
    try:
        configure_logging(level=log_level)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--log-level") from exc
    console = Console()
    frameworks = list(_FRAMEWORKS) if framework == "both" else [framework]
    unknown = [f for f in frameworks if f not in _FRAMEWORKS]
    if unknown:
        raise typer.BadParameter(
            f"--framework: choose langgraph, autogen or both, not {unknown[0]}"
        )
    if model and framework == "both":
        # Refused before any run: the LangGraph half would make paid model calls first.
        raise typer.BadParameter(
            "--model applies to LangGraph only; use it with --framework langgraph",
            param_hint="--model",
        )
    names = scenario or list(SCENARIOS)
    for name in names:
        if name not in SCENARIOS:
            raise typer.BadParameter(f"--scenario: {name!r} is not one of {', '.join(SCENARIOS)}")
    try:
        chosen_policy = load_policy(policy) if policy else demo_policy()
    except PolicyError as exc:
        raise typer.BadParameter(str(exc), param_hint="--policy") from exc
    if otlp or otlp_configured_by_env():
        try:
            # The demo's runs take seconds: with the exporters' default time-out of 10 s, a
            # collector that is down held its exit ~10 s past them, retrying (13 s for 3).
            timeout = None if otlp_timeout_configured_by_env() else _DEMO_EXPORT_TIMEOUT_S
            configure_otlp(otlp, service_name="kinguard-demo", timeout_s=timeout)
        except RuntimeError as exc:  # the exporter's extra is not installed
            raise typer.BadParameter(str(exc), param_hint="--otlp") from exc
    decisions: dict[str, HumanDecision] = {}
    decide = _decider(console, interactive, decisions)
    summary = Table(title="Summary", title_justify="left")
    columns = ("framework", "scenario", "messages", "flagged", "peak pair risk", "actions")
    for column in (*columns, "alerts (news)"):
        summary.add_column(column)
    for fw in frameworks:
        runner = _runner(fw)
        extra = {"model": model} if model else {}
        for name in names:
            spec = SCENARIOS[name]
            bare = _run(runner, spec, None, decide=decide, **extra)
            alerts: list[Alert] = []
            guard = KinGuard(
                spec.agents,
                identity=identity,
                policy=chosen_policy,
                detectors=default_detectors(statistical=statistical),
                sinks=[_Collect(alerts)],
            )
            verdicts: list[Verdict] = []
            guard.add_observer(verdicts.append)
            _run(runner, spec, guard, decide=decide, **extra)
            console.print(_scenario_table(spec, bare, verdicts, decisions))
            actions: dict[str, int] = {}
            for verdict in verdicts:
                if verdict.action is not Action.ALLOW:
                    actions[verdict.action.value] = actions.get(verdict.action.value, 0) + 1
            summary.add_row(
                fw,
                name,
                str(len(verdicts)),
                str(sum(1 for v in verdicts if v.signals)),
                f"{max((v.pair_risk for v in verdicts), default=0.0):.2f}",
                ", ".join(f"{k}\u00d7{v}" for k, v in actions.items()) or "-",
                # Alerts, and how many a pager would get: the rest repeat their incident.
                f"{len(alerts)} ({sum(not alert.repeat for alert in alerts)})" if alerts else "-",
            )
            guard.close()
    console.print(summary)


@app.command("check-policy")
def check_policy(
    path: Annotated[Path, typer.Argument(help="policy file: TOML, or YAML (.yaml/.yml)")],
) -> None:
    """Validate a policy file and print what it does."""
    try:
        loaded = load_policy(path)
    except PolicyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    console = Console()
    # File names and globs are data, not Rich markup: "prod[v2].toml", "collusion.[m]arket".
    table = Table(title=Text(f"{path} (on_error={loaded.error_mode})"), title_justify="left")
    sided = any(rule.between != "any" for rule in loaded.rules)
    for column in ("signal", "min score", "pair risk", *(("between",) if sided else ()), "action"):
        table.add_column(column)
    for rule in loaded.rules:
        table.add_row(
            Text(rule.signal or "-"),
            f"{rule.min_score:g}" if rule.signal else "-",
            f"{rule.risk:g}" if rule.risk is not None else "-",
            *((rule.between,) if sided else ()),
            rule.action.value,
        )
    console.print(table)


@app.command()
def train(
    data: Annotated[list[Path], typer.Argument(help="JSONL files of {text, signals} rows")],
    out: Annotated[Path, typer.Option(help="where to write the model (JSON; gzipped if .gz)")],
    evaluate_on: Annotated[
        list[Path] | None,
        typer.Option("--evaluate", help="JSONL files to score the new model on (repeatable)"),
    ] = None,
) -> None:
    """Train the statistical tier on labeled messages; use it with StatisticalDetector(model)."""
    # Imported here: training is rare, and the CLI's start-up serves every command.
    from kinguard.detectors.statistical import StatisticalDetector, load_corpus
    from kinguard.detectors.statistical import train as fit
    from kinguard.evaluation import detect_names, evaluate

    def fail(problem: str) -> NoReturn:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)

    # Everything that can be checked before minutes of training is checked first.
    if not out.parent.is_dir():
        fail(f"--out: {str(out.parent)!r} is not a directory")
    if out.is_dir():
        fail(f"--out: {str(out)!r} is a directory")
    try:
        rows, sizes = load_corpus(data)
        held_out = {path: load_corpus([path])[0] for path in evaluate_on or []}
        model = fit(rows, trained_on=sizes)
        model.save(out)
    except OSError as exc:
        fail(f"{exc.filename or ''}: {exc.strerror or exc}")
    except ValueError as exc:
        fail(str(exc))
    weights = sum(len(m.weights) for m in model.models.values())
    typer.echo(f"{out}: {len(rows)} rows, {len(model.models)} models, {weights} weights")
    detect = detect_names([StatisticalDetector(model)])
    for path, held in held_out.items():
        report = evaluate(held, detect)
        typer.echo(f"\n{path} ({report.messages} messages), statistical tier alone\n")
        typer.echo(report.table())


if __name__ == "__main__":  # python -m kinguard.cli
    app()
