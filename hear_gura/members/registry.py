"""The member-kind registry: ``"type"`` in an ensemble file -> the class that builds the member.

Every kind registers itself with :func:`register_member` (a decorator that fills
the name -> class table, as lhotse registers its feature extractors) and
declares:

- ``PARAMS``: its parameters, each a :class:`Param` with a type and a default,
  so a member spec is checked and completed when the ensemble file is read,
  before any weights load;
- ``describe(name, params, location)``: a :class:`MemberDescription` (width,
  states, hop and receptive field in samples at 16 kHz, native sample rate,
  random weights or not) WITHOUT loading weights: ``Head.build``, the harness's
  up-front checks, ``hear-gura list`` and ``hear-gura fixtures`` read it.

The built-in kinds live in ``hear_gura.members.<module>`` (:data:`BUILTIN_KINDS`)
and are imported on first use. Third-party kinds plug in through the Python
entry-point group ``hear_gura.members``: ``name = "package.module:Class"``
(the class is registered under ``name`` when first asked for).
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Tuple, Type, TypeVar

from hear_gura.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from hear_gura.members.base import Member

#: Entry-point group through which other packages add member kinds.
ENTRY_POINT_GROUP = "hear_gura.members"

#: Built-in kind -> module that registers it (imported on first use).
BUILTIN_KINDS: Dict[str, str] = {
    "hf": "hear_gura.members.hf",
    "s3prl": "hear_gura.members.s3prl_upstream",
    "crepe": "hear_gura.members.crepe",
    "pesto": "hear_gura.members.pesto",
    "basic_pitch": "hear_gura.members.basic_pitch",
    "resemblyzer": "hear_gura.members.resemblyzer",
}

_KINDS: Dict[str, Type["Member"]] = {}


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: Default of a parameter that the ensemble file must give.
REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Param:
    """A member parameter: its accepted JSON types, default and, optionally, choices.

    Attributes:
        types: accepted Python types of the JSON value (``(str,)``, ``(int,)``...;
            an int is accepted where float is, a bool never where int is).
        default: the value when the ensemble file omits it, or :data:`REQUIRED`.
        choices: the only accepted values, or None.
        doc: one line for ``hear-gura kinds`` and error messages.
    """

    types: Tuple[type, ...]
    default: Any = REQUIRED
    choices: Optional[Tuple[Any, ...]] = None
    doc: str = ""

    def check(self, kind: str, member: str, key: str, value: Any) -> Any:
        """``value`` if it fits, else a ConfigError that says what was expected."""
        if value is None and self.default is None:
            return value
        types = self.types + ((int,) if float in self.types else ())
        if isinstance(value, bool) and bool not in self.types or not isinstance(value, types):
            names = " or ".join(t.__name__ for t in self.types)
            raise ConfigError(f"{kind} member {member!r}: {key!r} must be a {names}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{kind} member {member!r}: {key!r} must be one of {list(self.choices)}, got {value!r}")
        return value


@dataclass(frozen=True)
class MemberDescription:
    """What a member is, known without loading its weights.

    Attribute names match :class:`~hear_gura.members.base.Member`'s, so
    :meth:`hear_gura.model.Head.build` takes either.

    Attributes:
        kind: the registered kind (``hf``, ``crepe``...).
        width: features per frame.
        num_states: selectable hidden states (``L + 1`` for an L-layer transformer).
        default_hop: samples at 16 kHz between frames (may be fractional, e.g.
            Basic Pitch's 256 samples at 22,050 Hz).
        receptive_field: samples at 16 kHz one frame needs (the shortest clip).
        sample_rate: the network's native rate (Hz); members resample from 16 kHz.
        random_weights: True for random stand-ins (``hear-gura fixtures``).
        hop_is_configurable: whether the hop can be chosen (CREPE, PESTO).
        weights: where the weights come from, in words (a path, a package, "weight-free").
        state_names: a short name per state, in order (``("conv1", ..., "conv5")``), or
            None where states are numbered layers (transformers: state i = layer i).
    """

    kind: str
    width: int
    num_states: int
    default_hop: float
    receptive_field: int
    sample_rate: int
    random_weights: bool
    hop_is_configurable: bool = False
    weights: str = ""
    state_names: Optional[Tuple[str, ...]] = None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


MemberClass = TypeVar("MemberClass", bound=type)


def register_member(kind: str) -> Callable[[MemberClass], MemberClass]:
    """Class decorator: register a :class:`~hear_gura.members.base.Member` subclass as ``kind``.

    The class must define ``PARAMS`` (a mapping of :class:`Param`) and the
    classmethod ``describe``; it is built as ``cls(name, params, manifest,
    normalize_waveform)`` with ``params`` completed from ``PARAMS``.

    Raises:
        ConfigError: another class is already registered as ``kind``.
    """

    def decorate(cls: MemberClass) -> MemberClass:
        existing = _KINDS.get(kind)
        if existing is not None and existing is not cls and existing.__qualname__ != cls.__qualname__:
            raise ConfigError(f"member kind {kind!r} is registered twice: {existing.__module__}.{existing.__qualname__} "
                              f"and {cls.__module__}.{cls.__qualname__}")
        _check_kind_class(kind, cls)
        cls.kind = kind
        _KINDS[kind] = cls
        return cls

    return decorate


def _check_kind_class(kind: str, cls: type) -> None:
    params = getattr(cls, "PARAMS", None)
    if not isinstance(params, Mapping) or not all(isinstance(p, Param) for p in params.values()):
        raise ConfigError(f"member kind {kind!r} ({cls.__qualname__}) must declare PARAMS: a mapping of name -> Param")
    if not callable(getattr(cls, "describe", None)):
        raise ConfigError(f"member kind {kind!r} ({cls.__qualname__}) must define the classmethod describe()")


def _entry_points() -> Dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_kinds() -> List[str]:
    """Every kind: built-in, registered in this process, or offered by an installed package."""
    return sorted(set(BUILTIN_KINDS) | set(_KINDS) | set(_entry_points()))


def member_class(kind: str) -> Type["Member"]:
    """The class registered as ``kind`` (importing built-ins and entry points on first use).

    Raises:
        ConfigError: no such kind, or its plug-in cannot be imported.
    """
    if kind in _KINDS:
        return _KINDS[kind]
    if kind in BUILTIN_KINDS:
        try:
            importlib.import_module(BUILTIN_KINDS[kind])
        except ImportError as err:
            raise ConfigError(f"member kind {kind!r} ({BUILTIN_KINDS[kind]}) could not be imported: {err}; "
                              "reinstall hear_gura's working set: pip install -r requirements.txt") from None
    elif isinstance(kind, str):
        entry = _entry_points().get(kind)
        if entry is not None:
            try:
                cls = entry.load()
            except Exception as err:  # noqa: BLE001 - any failure of a plug-in is the plug-in's
                raise ConfigError(f"member kind {kind!r} from entry point {entry.value!r} "
                                  f"(group {ENTRY_POINT_GROUP!r}) could not be imported: {err}") from None
            if kind not in _KINDS:
                register_member(kind)(cls)
    if kind not in _KINDS:
        raise ConfigError(f"unknown member type {kind!r}; known: {', '.join(known_kinds())} (other packages add "
                          f"kinds through the entry-point group {ENTRY_POINT_GROUP!r})")
    return _KINDS[kind]


def resolve_params(kind: str, member: str, params: Mapping[str, Any]) -> Dict[str, Any]:
    """``params`` checked against the kind's ``PARAMS``, every default filled in.

    Raises:
        ConfigError: an unknown parameter, a missing required one, or a value of
            the wrong type; the message lists what the kind takes.
    """
    declared: Mapping[str, Param] = member_class(kind).PARAMS
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ConfigError(f"{kind} member {member!r}: unknown parameter(s) {unknown}; {kind} takes "
                          f"{describe_params(declared)}")
    resolved: Dict[str, Any] = {}
    for key, param in declared.items():
        if key in params:
            resolved[key] = param.check(kind, member, key, params[key])
        elif param.default is REQUIRED:
            raise ConfigError(f"{kind} member {member!r} needs {key!r} ({param.doc or 'required'}); {kind} takes "
                              f"{describe_params(declared)}")
        else:
            resolved[key] = param.default
    return resolved


def describe_params(params: Mapping[str, Param]) -> str:
    """``{"checkpoint": str (required), "model": "full" | "tiny" = "full"}`` in words."""
    parts = []
    for key, param in params.items():
        kind = " | ".join(repr(c) for c in param.choices) if param.choices else "/".join(t.__name__ for t in param.types)
        default = " (required)" if param.default is REQUIRED else f" = {param.default!r}"
        parts.append(f"{key!r}: {kind}{default}")
    return "{" + ", ".join(parts) + "}"
