"""kinguard for AutoGen AgentChat.

>>> team = guard_team(RoundRobinGroupChat([buyer, seller]), guard)   # doctest: +SKIP
>>> result = await team.run(task="Negotiate 500 sensors.")            # doctest: +SKIP

``guard_team`` injects identity statements into the agents' system messages, inspects every
message inside the turn of the agent that produced it, before the rest of the team gets it, and
applies the policy's actions (nudge, redact, block, halt). ``KinGuardTermination`` stops a team
on a halt; ``resolve_halt`` turns a person's decision into the task that resumes it.
"""

from kinguard_autogen._component import KinGuardComponent, KinGuardConfig
from kinguard_autogen._events import (
    META_ACTION,
    META_REASONS,
    META_RESOLVED,
    META_SIGNALS,
    KinGuardVerdictEvent,
    kinguard_action,
)
from kinguard_autogen._scripted import ScriptedTeam, run_scenario
from kinguard_autogen._team import (
    STATE_KEY,
    guard_team,
    pending_halt,
    resolve_halt,
    team_guard,
    unguard_team,
)
from kinguard_autogen._termination import KinGuardTermination, KinGuardTerminationConfig

__all__ = [
    "META_ACTION",
    "META_REASONS",
    "META_RESOLVED",
    "META_SIGNALS",
    "STATE_KEY",
    "KinGuardComponent",
    "KinGuardConfig",
    "KinGuardTermination",
    "KinGuardTerminationConfig",
    "KinGuardVerdictEvent",
    "ScriptedTeam",
    "guard_team",
    "kinguard_action",
    "pending_halt",
    "resolve_halt",
    "run_scenario",
    "team_guard",
    "unguard_team",
]
