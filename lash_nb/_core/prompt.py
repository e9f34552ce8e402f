"""Prompt layers: what shapes a session's system prompt (lash ``session_model/prompt.rs``).

Theory of operation
- A :class:`PromptLayer` is an optional :class:`PromptTemplate` plus, per
  :class:`PromptSlot`, a slot layer: ``reset`` (drop what earlier layers put into that slot)
  and the layer's :class:`PromptContribution` s.
- Layers resolve in order (core, the plain ``system_prompt``, session, tools and plugins,
  turn: :func:`resolve_prompt_layers`): a later template replaces an earlier one; a reset
  slot forgets earlier contributions to it; contributions accumulate.
- The template renders sections; a section shows its title (``## Title``) only if one of its
  entries rendered text; a slot entry renders that slot's contributions by ``priority``
  (``### title`` above a titled one). A contribution gated on tools renders only while one of
  them is a member of the tool catalog.
- lash's builtins (its harness intro, protocol execution instructions, core guidance) render
  as nothing here: lash_nb has no protocol harness, so a session without layers sends no
  system prompt, as before (docs/adr/0040).
- :class:`PromptCache` memoises the last rendering with the inputs it came from (lash's
  one-slot ``PromptCache``): the layer objects (immutable, so one object is one revision) and
  the tool catalog generation. Consecutive turns with unchanged layers do not re-render.

Pure: stdlib only.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .text import clean_text


class PromptSlot(str, enum.Enum):
    INTRO = "intro"
    EXECUTION = "execution"
    GUIDANCE = "guidance"
    PROJECT_INSTRUCTIONS = "project_instructions"
    RUNTIME_CONTEXT = "runtime_context"
    ENVIRONMENT = "environment"


class PromptBuiltin(str, enum.Enum):
    MAIN_AGENT_INTRO = "main_agent_intro"
    EXECUTION_INSTRUCTIONS = "execution_instructions"
    CORE_GUIDANCE = "core_guidance"


_SLOT_ORDER = {slot: i for i, slot in enumerate(PromptSlot)}


def as_slot(value: PromptSlot | str) -> PromptSlot:
    """A slot from a ``PromptSlot`` or its snake_case name; one line naming the slots if not."""
    if isinstance(value, PromptSlot):
        return value
    try:
        return PromptSlot(str(value).strip().lower().replace("-", "_"))
    except ValueError:
        names = ", ".join(s.value for s in PromptSlot)
        raise ValueError(f"unknown prompt slot {value!r}; use one of {names}") from None


@dataclass(frozen=True)
class PromptContribution:
    """Text for one slot. ``requires_tools``: render only while one of these tools is a
    catalog member (lash's gate)."""

    slot: PromptSlot
    content: str
    title: str | None = None
    priority: int = 0
    requires_tools: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "slot", as_slot(self.slot))
        if not isinstance(self.content, str):
            raise TypeError(f"a prompt contribution's content must be a str, got "
                            f"{type(self.content).__name__}")
        object.__setattr__(self, "content", clean_text(self.content))
        if not isinstance(self.priority, int) or isinstance(self.priority, bool):
            raise TypeError(f"a prompt contribution's priority must be an int (lower renders "
                            f"first), got {self.priority!r}")
        title = clean_text(self.title).strip() if isinstance(self.title, str) else None
        object.__setattr__(self, "title", title or None)
        object.__setattr__(self, "requires_tools", tuple(self.requires_tools))

    # lash's constructors
    @classmethod
    def intro(cls, title: str | None, content: str) -> PromptContribution:
        return cls(PromptSlot.INTRO, content, title)

    @classmethod
    def execution(cls, title: str | None, content: str) -> PromptContribution:
        return cls(PromptSlot.EXECUTION, content, title)

    @classmethod
    def guidance(cls, title: str | None, content: str) -> PromptContribution:
        return cls(PromptSlot.GUIDANCE, content, title)

    @classmethod
    def project_instructions(cls, content: str) -> PromptContribution:
        return cls(PromptSlot.PROJECT_INSTRUCTIONS, content, "Project Instructions")

    @classmethod
    def runtime_context(cls, content: str) -> PromptContribution:
        return cls(PromptSlot.RUNTIME_CONTEXT, content, "Runtime Context")

    @classmethod
    def environment(cls, title: str | None, content: str) -> PromptContribution:
        return cls(PromptSlot.ENVIRONMENT, content, title)

    def with_priority(self, priority: int) -> PromptContribution:
        return replace(self, priority=int(priority))

    def requires_tool(self, *names: str) -> PromptContribution:
        return replace(self, requires_tools=tuple(names))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"slot": self.slot.value, "content": self.content,
                               "priority": self.priority}
        if self.title:
            out["title"] = self.title
        if self.requires_tools:
            out["gate"] = {"tools": list(self.requires_tools)}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PromptContribution:
        gate = data.get("gate") or {}
        return cls(as_slot(data["slot"]), str(data.get("content", "")), data.get("title"),
                   int(data.get("priority", 0)), tuple(gate.get("tools", ())))


@dataclass(frozen=True)
class PromptTemplateEntry:
    """One entry of a section: ``kind`` ``text`` (``content``), ``builtin`` or ``slot``."""

    kind: str
    content: str = ""
    builtin: PromptBuiltin | None = None
    slot: PromptSlot | None = None

    @classmethod
    def text(cls, content: str) -> PromptTemplateEntry:
        return cls("text", content=clean_text(content))

    @classmethod
    def of_builtin(cls, builtin: PromptBuiltin) -> PromptTemplateEntry:
        return cls("builtin", builtin=builtin)

    @classmethod
    def of_slot(cls, slot: PromptSlot | str) -> PromptTemplateEntry:
        return cls("slot", slot=as_slot(slot))

    def to_json(self) -> dict[str, Any]:
        if self.kind == "text":
            return {"kind": "text", "content": self.content}
        if self.kind == "builtin":
            assert self.builtin is not None
            return {"kind": "builtin", "builtin": self.builtin.value}
        assert self.slot is not None
        return {"kind": "slot", "slot": self.slot.value}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PromptTemplateEntry:
        kind = data.get("kind")
        if kind == "text":
            return cls.text(str(data.get("content", "")))
        if kind == "builtin":
            return cls.of_builtin(PromptBuiltin(data["builtin"]))
        return cls.of_slot(data["slot"])


@dataclass(frozen=True)
class PromptTemplateSection:
    entries: tuple[PromptTemplateEntry, ...]
    title: str | None = None


@dataclass(frozen=True)
class PromptTemplate:
    sections: tuple[PromptTemplateSection, ...]

    def render(self, contributions: Sequence[PromptContribution]) -> str:
        by_slot: dict[PromptSlot, list[PromptContribution]] = {}
        for c in contributions:
            by_slot.setdefault(c.slot, []).append(c)
        for items in by_slot.values():
            items.sort(key=lambda c: c.priority)  # stable: equal priorities keep their order
        rendered = (_render_section(s, by_slot) for s in self.sections)
        return "\n\n".join(r for r in rendered if r)

    def to_json(self) -> list[dict[str, Any]]:
        return [{"title": s.title, "entries": [e.to_json() for e in s.entries]}
                for s in self.sections]

    @classmethod
    def from_json(cls, data: Sequence[Mapping[str, Any]]) -> PromptTemplate:
        return cls(tuple(PromptTemplateSection(
            tuple(PromptTemplateEntry.from_json(e) for e in s.get("entries", ())), s.get("title"))
            for s in data))


def _render_section(section: PromptTemplateSection,
                    by_slot: Mapping[PromptSlot, Sequence[PromptContribution]]) -> str:
    parts: list[str] = []
    for entry in section.entries:
        if entry.kind == "text" and entry.content.strip():
            parts.append(entry.content.strip())
        elif entry.kind == "slot" and entry.slot is not None:
            for c in by_slot.get(entry.slot, ()):
                body = c.content.strip()
                if body:
                    parts.append(f"### {c.title}\n\n{body}" if c.title else body)
        # builtins render nothing in lash_nb (module docstring)
    if not parts:
        return ""
    title = (section.title or "").strip()
    return "\n\n".join([f"## {title}", *parts] if title else parts)


def default_prompt_template() -> PromptTemplate:
    """lash's default: intro, then Execution, Guidance and Environment sections."""
    b, s = PromptTemplateEntry.of_builtin, PromptTemplateEntry.of_slot
    return PromptTemplate((
        PromptTemplateSection((b(PromptBuiltin.MAIN_AGENT_INTRO), s(PromptSlot.INTRO))),
        PromptTemplateSection((b(PromptBuiltin.EXECUTION_INSTRUCTIONS), s(PromptSlot.EXECUTION)),
                              "Execution"),
        PromptTemplateSection((b(PromptBuiltin.CORE_GUIDANCE), s(PromptSlot.PROJECT_INSTRUCTIONS),
                               s(PromptSlot.GUIDANCE)), "Guidance"),
        PromptTemplateSection((s(PromptSlot.RUNTIME_CONTEXT), s(PromptSlot.ENVIRONMENT)),
                              "Environment"),
    ))


_DEFAULT_TEMPLATE = default_prompt_template()  # immutable: built once


@dataclass(frozen=True)
class PromptSlotLayer:
    reset: bool = False
    contributions: tuple[PromptContribution, ...] = ()


@dataclass(frozen=True)
class PromptLayer:
    """One scope's prompt changes (immutable: each method returns a new layer)."""

    template: PromptTemplate | None = None
    slots: tuple[tuple[PromptSlot, PromptSlotLayer], ...] = field(default=())

    def is_empty(self) -> bool:
        return self.template is None and not self.slots

    def _with_slot(self, slot: PromptSlot, layer: PromptSlotLayer) -> PromptLayer:
        kept = tuple((s, sl) for s, sl in self.slots if s is not slot)
        return replace(self, slots=(*kept, (slot, layer)))

    def slot_layer(self, slot: PromptSlot) -> PromptSlotLayer | None:
        return next((sl for s, sl in self.slots if s is slot), None)

    def with_contribution(self, contribution: PromptContribution) -> PromptLayer:
        current = self.slot_layer(contribution.slot) or PromptSlotLayer()
        return self._with_slot(contribution.slot, PromptSlotLayer(
            current.reset, (*current.contributions, contribution)))

    def with_replaced_slot(self, slot: PromptSlot | str,
                           contributions: Iterable[PromptContribution]) -> PromptLayer:
        slot = as_slot(slot)
        return self._with_slot(slot, PromptSlotLayer(
            True, tuple(replace(c, slot=slot) for c in contributions)))

    def with_cleared_slot(self, slot: PromptSlot | str) -> PromptLayer:
        return self._with_slot(as_slot(slot), PromptSlotLayer(True, ()))

    def with_template(self, template: PromptTemplate | None) -> PromptLayer:
        return replace(self, template=template)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.template is not None:
            out["template"] = self.template.to_json()
        if self.slots:
            out["slots"] = {s.value: {"reset": sl.reset,
                                      "contributions": [c.to_json() for c in sl.contributions]}
                            for s, sl in self.slots}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> PromptLayer:
        if not data:
            return cls()
        template = data.get("template")
        slots = tuple(
            (as_slot(name), PromptSlotLayer(bool(sl.get("reset")), tuple(
                PromptContribution.from_json(c) for c in sl.get("contributions", ()))))
            for name, sl in (data.get("slots") or {}).items())
        return cls(PromptTemplate.from_json(template) if template else None, slots)


def system_prompt_layer(text: str | None) -> PromptLayer:
    """The plain ``system_prompt(...)`` of a builder, as a layer: the Intro slot's text."""
    if not text or not text.strip():
        return PromptLayer()
    return PromptLayer().with_contribution(PromptContribution(PromptSlot.INTRO, text))


@dataclass(frozen=True)
class ResolvedPrompt:
    template: PromptTemplate
    contributions: tuple[PromptContribution, ...]

    def render(self, members: Iterable[str]) -> str:
        names = set(members)
        kept = [c for c in self.contributions
                if not c.requires_tools or any(t in names for t in c.requires_tools)]
        return self.template.render(kept)


def resolve_prompt_layers(layers: Iterable[PromptLayer]) -> ResolvedPrompt:
    template = _DEFAULT_TEMPLATE
    contributions: list[PromptContribution] = []
    for layer in layers:
        if layer.template is not None:
            template = layer.template
        for slot, sl in layer.slots:
            if sl.reset:
                contributions = [c for c in contributions if c.slot is not slot]
            contributions.extend(c if c.slot is slot else replace(c, slot=slot)
                                 for c in sl.contributions)
    contributions.sort(key=lambda c: _SLOT_ORDER[c.slot])  # stable within a slot
    return ResolvedPrompt(template, tuple(contributions))


class PromptCache:
    """The last rendered system prompt and the inputs it came from (lash's one-slot
    ``PromptCache``). Inputs are compared by identity first (layers are immutable, so the
    same object means the same layer revision), then by value."""

    def __init__(self) -> None:
        self._entry: tuple[tuple[object, ...], str] | None = None
        self.renders = 0  # how many times the template actually rendered

    def render(self, key: tuple[object, ...], build: Callable[[], str]) -> str:
        entry = self._entry
        if entry is not None and len(entry[0]) == len(key) and all(
                a is b or a == b for a, b in zip(entry[0], key, strict=True)):
            return entry[1]
        text = build()
        self.renders += 1
        self._entry = (key, text)
        return text

    def clear(self) -> None:
        self._entry = None


__all__ = [
    "PromptBuiltin",
    "PromptCache",
    "PromptContribution",
    "PromptLayer",
    "PromptSlot",
    "PromptSlotLayer",
    "PromptTemplate",
    "PromptTemplateEntry",
    "PromptTemplateSection",
    "ResolvedPrompt",
    "as_slot",
    "default_prompt_template",
    "resolve_prompt_layers",
    "system_prompt_layer",
]
