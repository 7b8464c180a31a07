"""Ensemble configurations: what an ``ensembles/*.json`` file declares, and options.

An ensemble file holds metadata (``gura_name``, ``description``), ``members``,
and a default for every option below; ``load_model(**options)`` (heareval's
``--model-options``) overrides any of them:

=========================  ===================================================
option                     values
=========================  ===================================================
``members``                list of member names (subset / reorder of the
                           declared ones) or of full member objects
``layers``                 a layer choice for every multi-layer member, or an
                           object ``{member: choice}`` (:mod:`hear_gura.layers`)
``fusion``                 ``avg`` | ``cat_interleave`` | ``cat_block``
``feature_align``          ``linear`` (resample the feature axis) | ``none``
``feature_width``          target width: an int (at most 65,536) or a member's name
``time_align``             ``frame_ratio`` (GURA) | ``centre``
``grid``                   the member whose frames are the output frames
``member_scale``           ``{member: factor}``: multiply a member's aligned
                           features by a positive factor before fusion
                           (default 1 each); balances members whose values
                           differ in scale, as heareval's probe does not
                           standardise its input
                           (``eval_scripts/member_scales.py --export``
                           measures factors on clips)
``normalize_waveform``     bool, or ``{member: bool}``
``scene_pooling``          ``mean`` | ``groups:K``
``crepe_timestamp_hop_ms`` CREPE hop for timestamp embeddings (ms)
``crepe_scene_hop_ms``     CREPE hop for scene embeddings (ms)
``max_window_seconds``     clips longer than this go through attention members
                           in overlapping windows (default 180 s: above the
                           longest HEAR 2021 clip, 120 s, so presets stay exact)
``window_overlap_seconds`` overlap of those windows (default: 10 s or a
                           quarter of the window, whichever is shorter)
``dtype``                  ``float32`` | ``bfloat16`` | ``float16`` (autocast;
                           GPU only, for speed; outputs stay float32)
=========================  ===================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from hear_gura.align import FEATURE_ALIGN_METHODS, TIME_ALIGN_METHODS
from hear_gura.errors import ConfigError
from hear_gura.fusion import FUSIONS
from hear_gura.layers import LayerChoiceValue
from hear_gura.members.base import MemberSpec
from hear_gura.pooling import parse_pooling
from hear_gura.timestamps import SAMPLE_RATE
from hear_gura.validation import non_finite_numbers

METADATA_KEYS = ("gura_name", "description")
DTYPES = ("float32", "bfloat16", "float16")
#: The largest ``feature_width``: far above any real member (CREPE full: 2,048; XLarge: 1,280), low
#: enough that a typo cannot ask for gigabytes per second of audio.
MAX_FEATURE_WIDTH = 65_536


@dataclass(frozen=True)
class EnsembleConfig:
    """A fully resolved ensemble: members and every option (see the module docstring)."""

    name: str
    members: Tuple[MemberSpec, ...]
    layers: Union[LayerChoiceValue, Dict[str, LayerChoiceValue]] = "last"
    fusion: str = "cat_interleave"
    feature_align: str = "none"
    feature_width: Union[int, str, None] = None
    time_align: str = "frame_ratio"
    grid: Optional[str] = None
    member_scale: Optional[Dict[str, float]] = None
    normalize_waveform: Union[bool, Dict[str, bool]] = False
    scene_pooling: str = "mean"
    crepe_timestamp_hop_ms: int = 50
    crepe_scene_hop_ms: int = 250
    max_window_seconds: float = 180.0
    window_overlap_seconds: Optional[float] = None
    dtype: str = "float32"
    gura_name: Optional[str] = None
    description: str = ""

    # ----------------------------------------------------------------- parsing
    @classmethod
    def option_names(cls) -> Tuple[str, ...]:
        """Names ``load_model`` accepts as keyword options."""
        return tuple(f.name for f in fields(cls) if f.name not in ("name",) + METADATA_KEYS)

    @classmethod
    def from_dict(cls, name: Optional[str], data: Mapping[str, Any]) -> "EnsembleConfig":
        """Build from an ensemble file's content or from :meth:`to_dict`'s output; validates everything.

        Args:
            name: the ensemble's name; None takes ``data["name"]`` (as :meth:`to_dict` writes it).
        """
        if "name" in data:
            if name is not None and data["name"] != name:
                raise ConfigError(f"ensemble {name!r}: the data names another ensemble, {data['name']!r}")
            name = str(data["name"])
            data = {k: v for k, v in data.items() if k != "name"}
        if name is None:
            raise ConfigError('from_dict needs a name: pass one or include "name" in the data')
        unknown = set(data) - set(cls.option_names()) - set(METADATA_KEYS)
        if unknown:
            raise ConfigError(
                f"ensemble {name!r}: unknown keys {sorted(unknown)}; valid: "
                f"{', '.join(METADATA_KEYS + cls.option_names())}"
            )
        if "members" not in data:
            raise ConfigError(f"ensemble {name!r} declares no members")
        members = _parse_members(data["members"], declared=None)
        values = {k: v for k, v in data.items() if k != "members"}
        return cls(name=name, members=members, **values).validated()

    def with_options(self, **options: Any) -> "EnsembleConfig":
        """A copy with ``load_model`` options applied.

        Raises:
            ConfigError: an unknown option name (the message lists the valid
                ones) or an invalid value.
        """
        unknown = sorted(set(options) - set(self.option_names()))
        if unknown:
            raise ConfigError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for ensemble {self.name!r}; "
                f"valid: {', '.join(self.option_names())}"
            )
        if "members" in options:
            options["members"] = _parse_members(options["members"], declared=self.members)
        return replace(self, **options).validated()

    # -------------------------------------------------------------- validation
    def validated(self) -> "EnsembleConfig":
        """Check every value; return self."""
        options = [key for key in self.option_names() if key != "members"]
        bad = [p for key in options for p in non_finite_numbers(getattr(self, key), key)]
        bad += [p for m in self.members for p in non_finite_numbers(dict(m.params), f"members.{m.name}")]
        if bad:
            raise ConfigError(
                f"option value(s) {', '.join(bad)} are not finite; every option takes finite numbers "
                "(JSON's NaN and Infinity are not valid values)"
            )
        names = self.member_names
        if len(set(names)) != len(names):
            raise ConfigError(f"ensemble {self.name!r}: member names repeat: {list(names)}")
        _choose("fusion", self.fusion, FUSIONS)
        _choose("feature_align", self.feature_align, FEATURE_ALIGN_METHODS)
        _choose("time_align", self.time_align, TIME_ALIGN_METHODS)
        parse_pooling(self.scene_pooling)
        if self.grid is not None and self.grid not in names:
            raise ConfigError(
                f"grid {self.grid!r} is not a member of this ensemble; valid: {', '.join(names)}"
            )
        width = self.feature_width
        if len(names) > 1 and width is not None and not (
            (isinstance(width, int) and not isinstance(width, bool) and width > 0) or width in names
        ):
            raise ConfigError(
                f"feature_width {width!r} must be a positive int or a member name ({', '.join(names)})"
            )
        if isinstance(width, int) and not isinstance(width, bool) and width > MAX_FEATURE_WIDTH:
            raise ConfigError(
                f"feature_width {width:,} is above the limit of {MAX_FEATURE_WIDTH:,} features per frame "
                "(the widest real member gives 2,048); give a smaller int or a member name"
            )
        if self.feature_align == "linear" and width is None and len(names) > 1:
            raise ConfigError('feature_align "linear" needs a feature_width (an int or a member name)')
        for key in ("crepe_timestamp_hop_ms", "crepe_scene_hop_ms"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{key} must be a positive whole number of milliseconds, got {value!r}")
        window, overlap = self.max_window_seconds, self.overlap_seconds
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (window, overlap)) or not (
            window >= 0.05 and 0 <= overlap < window
        ):
            raise ConfigError(
                "max_window_seconds must be >= 0.05 and 0 <= window_overlap_seconds < max_window_seconds, "
                f"got {window!r} and {overlap!r}"
            )
        _choose("dtype", self.dtype, DTYPES)
        _check_member_scale(self.member_scale, names)
        for key in ("layers", "normalize_waveform"):
            value = getattr(self, key)
            if isinstance(value, Mapping) and set(value) != {"weights"}:
                extra = set(value) - set(names)
                if extra:
                    raise ConfigError(f"{key} names unknown members {sorted(extra)}; valid: {', '.join(names)}")
        return self

    # --------------------------------------------------------------- accessors
    @property
    def member_names(self) -> Tuple[str, ...]:
        return tuple(m.name for m in self.members)

    @property
    def layers_by_member(self) -> bool:
        """Whether ``layers`` is an object ``{member: choice}`` rather than one choice for all."""
        return isinstance(self.layers, Mapping) and set(self.layers) != {"weights"}

    def layer_choice(self, member: str) -> LayerChoiceValue:
        """The layer choice of one member (``last`` unless set)."""
        if self.layers_by_member:
            return self.layers.get(member, "last")
        return self.layers

    def normalizes(self, member: str) -> bool:
        """Whether a member's input waveform is normalised."""
        if isinstance(self.normalize_waveform, Mapping):
            return bool(self.normalize_waveform.get(member, False))
        if not isinstance(self.normalize_waveform, bool):
            raise ConfigError(f"normalize_waveform must be true, false or {{member: bool}}, got {self.normalize_waveform!r}")
        return self.normalize_waveform

    def scale_of(self, member: str) -> float:
        """The factor a member's features are multiplied by before fusion (1.0 unless set)."""
        return float((self.member_scale or {}).get(member, 1.0))

    @property
    def overlap_seconds(self) -> float:
        """Window overlap in seconds (the default when ``window_overlap_seconds`` is unset)."""
        if self.window_overlap_seconds is None:
            window = self.max_window_seconds
            return min(10.0, window / 4) if isinstance(window, (int, float)) else 0.0
        return self.window_overlap_seconds

    def hop_samples(self, scene: bool) -> int:
        """CREPE hop in samples for scene or timestamp embeddings."""
        ms = self.crepe_scene_hop_ms if scene else self.crepe_timestamp_hop_ms
        return ms * SAMPLE_RATE // 1000

    def to_dict(self) -> Dict[str, Any]:
        """The resolved configuration as JSON-able data, every default filled in (written beside outputs).

        Defaults that depend on other options are written as their values
        (``grid``: the first member; ``window_overlap_seconds``: its computed
        value), and members carry their type's default params, so two configs
        that compute the same thing give the same dict.
        ``EnsembleConfig.from_dict(None, c.to_dict()).to_dict() == c.to_dict()``.
        """
        data: Dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        data["members"] = [m.to_dict() for m in self.members]
        data["grid"] = self.grid or self.member_names[0]
        data["window_overlap_seconds"] = self.overlap_seconds
        data["member_scale"] = {name: self.scale_of(name) for name in self.member_names}
        return json.loads(json.dumps(data))  # tuples -> lists, a deep copy


def _choose(key: str, value: Any, valid: Tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"unknown {key} {value!r}; valid: {', '.join(valid)}")


def _check_member_scale(value: Any, names: Tuple[str, ...]) -> None:
    """``member_scale`` must be None or ``{member: positive finite number}`` naming members of the ensemble."""
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise ConfigError(f'member_scale must be an object {{member: factor}}, e.g. {{"crepe": 0.5}}, got {value!r}')
    extra = sorted(set(value) - set(names))
    if extra:
        raise ConfigError(f"member_scale names unknown members {extra}; valid: {', '.join(names)}")
    for name, factor in value.items():
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < float("inf"):
            raise ConfigError(f"member_scale[{name!r}] must be a positive finite number, got {factor!r}")


def _parse_members(value: Any, declared: Optional[Tuple[MemberSpec, ...]]) -> Tuple[MemberSpec, ...]:
    """Members from a list of objects, or of names picked from ``declared``."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"members must be a non-empty list of member names or objects, got {value!r}")
    by_name = {m.name: m for m in declared or ()}
    members = []
    for item in value:
        if isinstance(item, str):
            if item not in by_name:
                raise ConfigError(
                    f"unknown member {item!r}; valid: {', '.join(by_name) or '(none declared)'}; "
                    'or give a full member object {"name": ..., "type": ...}'
                )
            members.append(by_name[item])
        else:
            members.append(MemberSpec.from_dict(item))
    return tuple(members)
