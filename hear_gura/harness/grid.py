"""Option grids: ``--grid '{"fusion": ["avg", "cat_interleave"]}'`` to validated ensemble variants.

A grid is a JSON object mapping ``load_model`` option names to lists of
candidate values; its points are the cartesian product (an empty grid has one
point, ``{}``: the ensembles as declared). Every point is applied to every
ensemble and validated with :meth:`~hear_gura.ensemble.EnsembleConfig.with_options`
before any embedding is computed, so a typo fails in a second, not after an hour.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from hear_gura.errors import ConfigError

GRID_EXAMPLE = '{"fusion": ["avg", "cat_interleave"], "layers": ["last", "mean"]}'


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: the identity of an options object."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def parse_grid(text: Optional[str]) -> Dict[str, List[Any]]:
    """Read a grid from JSON text or from a JSON file.

    Args:
        text: a JSON object ``{option: [value, ...]}``, a path to a file holding
            one, or None / empty for no grid.
    Returns:
        the grid, keys in the order given.
    Raises:
        ConfigError: not JSON, not an object, or a value that is not a
            non-empty list.
    """
    if text is None or not text.strip():
        return {}
    source = "--grid"
    stripped = text.strip()
    if not stripped.startswith("{"):
        path = Path(stripped).expanduser()
        if not path.is_file():
            raise ConfigError(f"--grid must be a JSON object such as '{GRID_EXAMPLE}' or a JSON file; got {text!r}")
        source, stripped = str(path), path.read_text(encoding="utf-8")
    try:
        grid = json.loads(stripped)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{source} is not valid JSON ({err}); example: '{GRID_EXAMPLE}'") from None
    if not isinstance(grid, dict):
        raise ConfigError(f"{source} must be a JSON object of option -> list of values, e.g. '{GRID_EXAMPLE}'")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(
                f"{source}: the value of {key!r} must be a non-empty list of candidate values "
                f"(wrap a single value: {{{json.dumps(key)}: [{json.dumps(values)}]}}), got {values!r}"
            )
    return grid


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> List[Dict[str, Any]]:
    """Cartesian product of a grid, the first key varying slowest; ``[{}]`` for an empty grid.

    Duplicate points (a value listed twice) appear once.
    """
    keys = list(grid)
    points: List[Dict[str, Any]] = []
    seen = set()
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, values))
        identity = canonical_json(point)
        if identity not in seen:
            seen.add(identity)
            points.append(point)
    return points


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)


def variant_label(ensemble: str, options: Mapping[str, Any]) -> str:
    """A stable, readable name: ``fusion_cat`` or ``fusion_cat[fusion=avg,layers=mean]`` (keys sorted)."""
    if not options:
        return ensemble
    return f"{ensemble}[" + ",".join(f"{k}={_value_text(options[k])}" for k in sorted(options)) + "]"


def variant_slug(ensemble: str, options: Mapping[str, Any]) -> str:
    """A file-system-safe unique folder name for a variant (readable prefix + hash of the options)."""
    if not options:
        return ensemble
    readable = re.sub(r"[^A-Za-z0-9_.=-]+", "-", ",".join(f"{k}={_value_text(options[k])}" for k in sorted(options)))
    digest = hashlib.sha1(canonical_json(dict(options)).encode("utf-8")).hexdigest()[:10]
    return f"{ensemble}__{readable.strip('-')[:60]}__{digest}"


@dataclass(frozen=True)
class Variant:
    """One ensemble with one point of the option grid.

    Attributes:
        ensemble: the ensemble's name (``hear_gura.<ensemble>`` is its HEAR module).
        options: ``load_model`` options (heareval's ``--model-options``).
        label: readable name (:func:`variant_label`).
        slug: folder name (:func:`variant_slug`).
    """

    ensemble: str
    options: Dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return variant_label(self.ensemble, self.options)

    @property
    def slug(self) -> str:
        return variant_slug(self.ensemble, self.options)

    @property
    def module(self) -> str:
        return f"hear_gura.{self.ensemble}"

    @property
    def options_json(self) -> str:
        """The options as canonical JSON (what ``--model-options`` receives)."""
        return canonical_json(self.options)


def parse_ensembles(text: "str | Sequence[str]") -> List[str]:
    """``"a,b"`` (or a list) to known ensemble names, in order, without repeats.

    Raises:
        ConfigError: empty, or an unknown name (the message lists the known ones).
    """
    from hear_gura.registry import load_ensemble

    items = text.split(",") if isinstance(text, str) else list(text)
    names: List[str] = []
    for item in (i.strip() for i in items):
        if item and item not in names:
            load_ensemble(item)  # raises ConfigError listing the valid names
            names.append(item)
    if not names:
        raise ConfigError("--ensembles names no ensemble; e.g. --ensembles crepe,fusion_cat (hear-gura list --names)")
    return names


def build_variants(
    ensembles: Sequence[str], grid: Mapping[str, Sequence[Any]], manifest: Optional[str] = None
) -> List[Variant]:
    """Every ensemble with every grid point, validated.

    Each point is applied with ``load_ensemble(name).with_options(**point)``;
    layer choices are also parsed against each member's depth (read from the
    checkpoint's ``config.json`` when ``manifest`` maps it, else the real
    checkpoint's), since they are otherwise only checked when a model is built.

    Raises:
        ConfigError: naming the ensemble and the point, with the package's message.
        CheckpointError: ``manifest`` is not a readable manifest.
    """
    from hear_gura.manifest import Manifest
    from hear_gura.registry import load_ensemble

    checkpoints = Manifest.load(manifest) if manifest else Manifest()

    variants: List[Variant] = []
    for name in ensembles:
        base = load_ensemble(name)
        for point in expand_grid(grid):
            try:
                config = base.with_options(**json.loads(json.dumps(point)))
                _check_layer_choices(config, checkpoints)
            except ConfigError as err:
                raise ConfigError(f"grid point {canonical_json(point)} for ensemble {name!r}: {err}") from None
            variants.append(Variant(name, dict(point)))
    return variants


def _check_layer_choices(config: Any, manifest: Any) -> None:
    """Build the variant's head from its members' descriptions (no weights loaded): what would fail later fails now.

    Each member kind describes itself (width, states...) from its checkpoint's
    config or its own constants (:func:`hear_gura.identity.describe_member`);
    :meth:`hear_gura.model.Head.build` then checks every layer choice against
    its member's depth and the fusion against the members' widths (e.g.
    ``{"feature_align": "none"}`` on members of different widths). A member
    whose checkpoint is not on this machine cannot be described: its layer
    choice is checked for its form only, and widths are checked when it loads.
    """
    from hear_gura.errors import CheckpointError
    from hear_gura.identity import describe_member
    from hear_gura.layers import parse_layer_choice
    from hear_gura.model import Head, check_layers_have_layers

    described = {}
    for member in config.members:
        try:
            described[member.name] = describe_member(member, manifest)
        except CheckpointError:
            pass
    if len(described) == len(config.members):
        Head.build(config, described)
        return
    check_layers_have_layers(config, {m.name: described[m.name].num_states if m.name in described else 2
                                      for m in config.members})
    for member in config.members:
        choice = config.layer_choice(member.name)
        if member.name in described:
            if described[member.name].num_states > 1 or config.layers_by_member:
                try:
                    parse_layer_choice(choice, described[member.name].num_states)
                except ConfigError as err:
                    raise ConfigError(f"member {member.name!r}: {err}") from None
        elif isinstance(choice, str):
            parse_layer_choice(choice, 1000)  # depth unknown here: check the form only
