"""kinguard for LangGraph.

``guard_graph(builder, guard).compile(...)`` guards a multi-agent ``StateGraph`` without changes
to its nodes; :class:`KinGuardMiddleware` does the same inside a LangChain ``create_agent``.
"""

from typing import TYPE_CHECKING, Any

from kinguard_langgraph._compiled import GuardedCompiledStateGraph
from kinguard_langgraph._core import halt_payload
from kinguard_langgraph._graph import GuardedStateGraph, guard_graph
from kinguard_langgraph._scripted import ScriptedChatModel, run_scenario
from kinguard_langgraph._state import GUARD_KEY

if TYPE_CHECKING:
    from kinguard_langgraph._middleware import KinGuardMiddleware

__all__ = [
    "GUARD_KEY",
    "GuardedCompiledStateGraph",
    "GuardedStateGraph",
    "KinGuardMiddleware",
    "ScriptedChatModel",
    "guard_graph",
    "halt_payload",
    "run_scenario",
]


def __getattr__(name: str) -> Any:
    # The middleware needs ``langchain.agents`` (a few hundred ms to import); graph-only users
    # do not pay for it.
    if name == "KinGuardMiddleware":
        from kinguard_langgraph._middleware import KinGuardMiddleware

        return KinGuardMiddleware
    raise AttributeError(f"module 'kinguard_langgraph' has no attribute {name!r}")
