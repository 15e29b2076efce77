"""Reaching a team's group chat manager, which AgentChat makes inside its runtime."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from autogen_agentchat.teams import BaseGroupChat
from autogen_agentchat.teams._group_chat._base_group_chat_manager import BaseGroupChatManager
from autogen_agentchat.teams._group_chat._sequential_routed_agent import SequentialRoutedAgent
from autogen_core import AgentId, SingleThreadedAgentRuntime

__all__ = ["Patch", "with_manager"]

Patch = Callable[[object, str, Any], None]
"""``patch(object, attribute, value)``: a change that unguarding the team restores."""

_M = TypeVar("_M", bound=BaseGroupChatManager)


def with_manager(
    team: BaseGroupChat, kind: type[_M], install: Callable[[_M], None], patch: Patch
) -> bool:
    """Call ``install`` on the team's manager: the one it makes at its first run or, if it has
    run already, the one it made then. False when that one is out of kinguard's reach (made by
    a runtime other than ``SingleThreadedAgentRuntime``) or not a ``kind``."""
    if not team._initialized:
        create = team._create_group_chat_manager_factory

        def factory(*args: Any, **kwargs: Any) -> Callable[[], SequentialRoutedAgent]:
            make = create(*args, **kwargs)

            def manager() -> SequentialRoutedAgent:
                made = make()
                if isinstance(made, kind):
                    install(made)
                return made

            return manager

        patch(team, "_create_group_chat_manager_factory", factory)
        return True
    # Made at the first run, and kept by the runtime (AgentChat has no public way to it).
    runtime = team._runtime
    manager_id = AgentId(team._group_chat_manager_topic_type, team._team_id)
    made = (
        runtime._instantiated_agents.get(manager_id)
        if isinstance(runtime, SingleThreadedAgentRuntime)
        else None
    )
    if not isinstance(made, kind):
        return False
    install(made)
    return True
