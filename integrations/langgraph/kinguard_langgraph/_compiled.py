"""The compiled guarded graph: a ``CompiledStateGraph`` whose streams pass through the gate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any, Generic, cast

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import merge_configs
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.typing import ContextT, InputT, OutputT, StateT

from kinguard import KinGuard
from kinguard.logs import get_logger
from kinguard_langgraph._core import EVENTS_KEY, GraphCore
from kinguard_langgraph._state import GUARD_KEY
from kinguard_langgraph._stream import EventGate, Item, StreamGate, StreamShape

__all__ = ["GuardedCompiledStateGraph"]

_log = get_logger("kinguard.langgraph")
_TASK_ID_KEY = "__pregel_task_id"  # langgraph's CONFIG_KEY_TASK_ID: set when run as a subgraph
_RAW_KEY = "_kinguard_invoke"
"""Passed by our ``invoke`` through ``Pregel.invoke`` to ``stream``: the run is already restored
and only its final values and interrupts are returned, so the chunks need no cleaning."""


class GuardedCompiledStateGraph(
    CompiledStateGraph[StateT, ContextT, InputT, OutputT],
    Generic[StateT, ContextT, InputT, OutputT],
):
    """What ``guard_graph(builder, guard).compile()`` returns. Use it like any compiled graph.

    ``stream``/``astream`` restore the guard's state for the thread from the checkpointer and
    deliver only inspected content in every stream mode; ``invoke``/``ainvoke``/``batch``
    restore it too. ``guard`` is the :class:`~kinguard.KinGuard` in use.
    """

    _kinguard: GraphCore

    def __init__(self, *, _kinguard: GraphCore | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if _kinguard is not None:
            self._kinguard = _kinguard

    @classmethod
    def adopt(
        cls, compiled: CompiledStateGraph[Any, Any, Any, Any], core: GraphCore
    ) -> GuardedCompiledStateGraph[Any, Any, Any, Any]:
        compiled.__class__ = cls
        guarded: GuardedCompiledStateGraph[Any, Any, Any, Any] = compiled  # type: ignore[assignment]
        guarded._kinguard = core
        channels = guarded.stream_channels_asis
        if not isinstance(channels, str):
            guarded.stream_channels = [c for c in channels if c != GUARD_KEY]
        return guarded

    @property
    def guard(self) -> KinGuard:
        return self._kinguard.guard

    # -- guard state from the checkpointer --------------------------------------------------

    def _restore_target(
        self, config: RunnableConfig | None
    ) -> tuple[Any, RunnableConfig, str] | None:
        merged = merge_configs(self.config, config)
        conf = merged.get("configurable") or {}
        thread_id = conf.get("thread_id")
        saver = self.checkpointer
        if not thread_id or _TASK_ID_KEY in conf or not isinstance(saver, BaseCheckpointSaver):
            return None
        target: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
        if conf.get("checkpoint_id"):
            target["checkpoint_id"] = conf["checkpoint_id"]
        return saver, RunnableConfig(configurable=target), str(thread_id)

    def _restore(self, config: RunnableConfig | None) -> None:
        try:
            target = self._restore_target(config)
            if target is None:
                return
            saver, checkpoint_config, thread_id = target
            found = saver.get_tuple(checkpoint_config)
            self._apply_restore(found, thread_id)
        except Exception as exc:
            _log.error("kinguard.restore_failed", error=self._kinguard.guard.describe_error(exc))

    async def _arestore(self, config: RunnableConfig | None) -> None:
        try:
            target = self._restore_target(config)
            if target is None:
                return
            saver, checkpoint_config, thread_id = target
            try:
                found = await saver.aget_tuple(checkpoint_config)
            except NotImplementedError:
                found = await asyncio.to_thread(saver.get_tuple, checkpoint_config)
            self._apply_restore(found, thread_id)
        except Exception as exc:
            _log.error("kinguard.restore_failed", error=self._kinguard.guard.describe_error(exc))

    def _apply_restore(self, found: Any, thread_id: str) -> None:
        if found is None:
            return
        channel = (found.checkpoint.get("channel_values") or {}).get(GUARD_KEY)
        self._kinguard.restore(channel, thread_id)

    # -- streaming ----------------------------------------------------------------------------

    def _shape(
        self, config: RunnableConfig | None, stream_mode: Any, subgraphs: bool, version: str
    ) -> StreamShape:
        nested = config is not None and _TASK_ID_KEY in (config.get("configurable") or {})
        return StreamShape(
            stream_mode=stream_mode,
            subgraphs=subgraphs,
            version=version,
            default_mode="values" if nested else self.stream_mode,
            config=config,
        )

    def _emit(self, shape: StreamShape, gate: StreamGate, raw: Any) -> list[Any]:
        try:
            items: list[Item] = gate.feed(shape.parse(raw, inner=True))
        except Exception as exc:  # a gate bug must not leak uninspected content
            _log.error("kinguard.stream_gate_error", error=self._kinguard.guard.describe_error(exc))
            return []
        return [shape.format(item) for item in items if item.mode != "custom" or shape.wants_custom]

    def _clean(self, shape: StreamShape, raw: Any) -> Any:
        try:
            return shape.clean(raw)
        except Exception as exc:
            _log.error(
                "kinguard.stream_clean_error", error=self._kinguard.guard.describe_error(exc)
            )
            return raw

    # -- invoke: values and interrupts only ----------------------------------------------------

    @staticmethod
    def _plain_invoke(stream_mode: Any, print_mode: Any, kwargs: dict[str, Any]) -> bool:
        """An ``invoke`` that returns only the final values (and interrupts): kinguard's channel
        is not among the values, and nothing else of the run reaches the caller."""
        return stream_mode == "values" and not print_mode and not kwargs.get("subgraphs")

    def invoke(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        stream_mode: Any = "values",
        print_mode: Any = (),
        **kwargs: Any,
    ) -> Any:
        if not self._plain_invoke(stream_mode, print_mode, kwargs):
            return super().invoke(
                input, config, stream_mode=stream_mode, print_mode=print_mode, **kwargs
            )
        self._restore(config)
        kwargs[_RAW_KEY] = True
        return super().invoke(
            input, config, stream_mode=stream_mode, print_mode=print_mode, **kwargs
        )

    async def ainvoke(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        stream_mode: Any = "values",
        print_mode: Any = (),
        **kwargs: Any,
    ) -> Any:
        if not self._plain_invoke(stream_mode, print_mode, kwargs):
            return await super().ainvoke(
                input, config, stream_mode=stream_mode, print_mode=print_mode, **kwargs
            )
        await self._arestore(config)
        kwargs[_RAW_KEY] = True
        return await super().ainvoke(
            input, config, stream_mode=stream_mode, print_mode=print_mode, **kwargs
        )

    # -- streaming ------------------------------------------------------------------------------

    def stream(  # type: ignore[override]
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        stream_mode: Any = None,
        subgraphs: bool = False,
        version: Any = "v1",
        **kwargs: Any,
    ) -> Iterator[Any]:
        if kwargs.pop(_RAW_KEY, False):  # from our ``invoke``, already restored
            return super().stream(
                input,
                config,
                stream_mode=stream_mode,
                subgraphs=subgraphs,
                version=version,
                **kwargs,
            )
        return self._guarded_stream(
            input, config, stream_mode=stream_mode, subgraphs=subgraphs, version=version, **kwargs
        )

    def _guarded_stream(
        self,
        input: Any,
        config: RunnableConfig | None,
        *,
        stream_mode: Any,
        subgraphs: bool,
        version: Any,
        **kwargs: Any,
    ) -> Iterator[Any]:
        self._restore(config)
        shape = self._shape(config, stream_mode, subgraphs, version)
        if not shape.gated:
            for raw in super().stream(
                input,
                config,
                stream_mode=shape.requested,
                subgraphs=subgraphs,
                version=version,
                **kwargs,
            ):
                yield self._clean(shape, raw)
            return
        gate = StreamGate(self._kinguard, shape)
        try:
            for raw in super().stream(
                input,
                shape.config,
                stream_mode=cast(Any, shape.inner_modes),
                subgraphs=subgraphs,
                version=version,
                **kwargs,
            ):
                yield from self._emit(shape, gate, raw)
        finally:
            gate.close()

    def astream(  # type: ignore[override]
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        stream_mode: Any = None,
        subgraphs: bool = False,
        version: Any = "v1",
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        if kwargs.pop(_RAW_KEY, False):  # from our ``ainvoke``, already restored
            return super().astream(
                input,
                config,
                stream_mode=stream_mode,
                subgraphs=subgraphs,
                version=version,
                **kwargs,
            )
        return self._guarded_astream(
            input, config, stream_mode=stream_mode, subgraphs=subgraphs, version=version, **kwargs
        )

    async def _guarded_astream(
        self,
        input: Any,
        config: RunnableConfig | None,
        *,
        stream_mode: Any,
        subgraphs: bool,
        version: Any,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        await self._arestore(config)
        shape = self._shape(config, stream_mode, subgraphs, version)
        if not shape.gated:
            async for raw in super().astream(
                input,
                config,
                stream_mode=shape.requested,
                subgraphs=subgraphs,
                version=version,
                **kwargs,
            ):
                yield self._clean(shape, raw)
            return
        gate = StreamGate(self._kinguard, shape)
        try:
            async for raw in super().astream(
                input,
                shape.config,
                stream_mode=cast(Any, shape.inner_modes),
                subgraphs=subgraphs,
                version=version,
                **kwargs,
            ):
                for out in self._emit(shape, gate, raw):
                    yield out
        finally:
            gate.close()

    def astream_events(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        version: Any = "v2",
        **kwargs: Any,
    ) -> Any:
        """``astream_events``: v1/v2 token events are gated like ``stream_mode="messages"``.

        (``version="v3"`` runs through :meth:`astream`, so it is gated there.)
        """
        if version not in ("v1", "v2"):
            return super().astream_events(input, config, version=version, **kwargs)
        return self._guarded_events(input, config, version=version, **kwargs)

    async def _guarded_events(
        self, input: Any, config: RunnableConfig | None, *, version: Any, **kwargs: Any
    ) -> AsyncIterator[Any]:
        conf = dict((config or {}).get("configurable") or {})
        base = len([p for p in str(conf.get("checkpoint_ns") or "").split("|") if p])
        conf[EVENTS_KEY] = True
        patched = cast(RunnableConfig, {**(config or {}), "configurable": conf})
        gate = EventGate(self._kinguard, base)
        try:
            async for event in super().astream_events(input, patched, version=version, **kwargs):
                try:
                    released = gate.feed(event)
                except Exception as exc:
                    _log.error(
                        "kinguard.event_gate_error", error=self._kinguard.guard.describe_error(exc)
                    )
                    continue
                for out in released:
                    yield out
        finally:
            gate.close()
