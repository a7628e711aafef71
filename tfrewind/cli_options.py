"""Click options generated from config fields, and choices read from registries.

Why: a flag that sets a config field takes its type, default and help from the dataclass field
(:mod:`tfrewind.config_fields`), so ``--help`` cannot drift from the config. Its click default
stays ``None`` — "not given" — so that a ``--config`` YAML is only overridden by flags the user
typed; the help shows the field's default instead. Names (schedules, methods, formats) are read
from their registry each time help is shown or a value is parsed, so a name registered at run
time is listed and accepted without touching the CLI. The option groups several commands share
(:func:`config_options`, :func:`prune_options`) and the config they build (:func:`build_config`)
live here too, so :mod:`tfrewind.cli` holds only the commands.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Callable

import click

from .config import RunConfig, load_config
from .config_fields import FieldSpec, field_spec
from .registry import Registry

_TYPES: dict[Any, click.ParamType] = {int: click.INT, float: click.FLOAT, str: click.STRING}


class RegistryChoice(click.Choice):
    """``click.Choice`` over a registry's names (minus ``exclude``), read when parsed or shown."""

    def __init__(self, registry: Registry[Any], exclude: tuple[str, ...] = ()) -> None:
        # No super().__init__: it would freeze the names into a tuple.
        self.registry = registry
        self.exclude = frozenset(exclude)
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(name for name in self.registry.names() if name not in self.exclude)


class DynamicHelpOption(click.Option):
    """An option whose help text is computed when help is shown (it lists what is registered then)."""

    def __init__(self, *args: Any, help_text: Callable[[], str], **attrs: Any) -> None:
        super().__init__(*args, **attrs)
        self.help_text = help_text  # not called yet: commands are built on every start, help is rarely shown

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        self.help = self.help_text()
        return super().get_help_record(ctx)


class ConfigOption(DynamicHelpOption):
    """A flag that sets the config field ``key`` (dotted, below dataclass ``root``).

    ``choice``: refuse names outside the field's registry while parsing (click's message); else the
    config or the registry refuses them later with theirs. ``exclude``: registry names this
    command does not offer. ``note``: what the flag means for this command, after the field's doc.
    """

    def __init__(self, param_decls: list[str], *, key: str, root: type = RunConfig, choice: bool = False,
                 exclude: tuple[str, ...] = (), note: str = "", **attrs: Any) -> None:
        self.key, self.root, self.note = key, root, note
        spec = self.spec()
        hint = _without_none(spec.hint)
        flag, *name = param_decls
        if choice and spec.choices is None:
            raise ValueError(f"{key} names no registry to choose from")
        if hint is bool:
            param_decls = [f"{flag}/--no-{flag[2:]}", *name]
        elif choice:
            attrs["type"] = RegistryChoice(spec.choices, exclude)
        elif "type" in attrs:  # e.g. click.Path(): a metavar that says what to give
            pass
        elif hint in _TYPES:
            attrs["type"] = _TYPES[hint]
        else:  # lists (and unions with lists) are parsed by the config: "0.5,0.3"
            attrs["metavar"] = _list_metavar(hint)
        self.lists_choices = spec.choices is not None and not choice  # a Choice shows them itself
        super().__init__(param_decls, default=None, help_text=self.render_help, **attrs)

    def spec(self) -> FieldSpec:
        return field_spec(self.key, self.root)

    def render_help(self) -> str:
        spec = self.spec()
        parts = [spec.doc]
        if self.lists_choices:
            parts.append(f"Choices: {', '.join(spec.choices.names())}.")
        parts.append(self.note)
        text = " ".join(part for part in parts if part)
        shown = _shown(spec.default)
        return f"{text}  [default: {shown}]" if shown is not None else text


def config_option(flag: str, key: str, name: str | None = None, **attrs: Any) -> Callable:
    """Decorator: ``flag`` sets config field ``key``; ``name`` is the function parameter it fills."""
    return click.option(flag, *([name] if name else []), cls=ConfigOption, key=key, **attrs)


def config_flags(ctx: click.Context) -> dict[str, Any]:
    """The config fields the user set by flags on this command: {dotted key: value}."""
    return {param.key: ctx.params[param.name] for param in _config_params(ctx)
            if ctx.params.get(param.name) is not None}


def flag_names(ctx: click.Context) -> dict[str, str]:
    """{dotted key: the flag that sets it} for this command, in the order ``--help`` lists them."""
    return {param.key: param.opts[0] for param in _config_params(ctx)}


# ------------------------------------------------------------- option groups the commands share


def overrides(pairs: dict[str, Any], sets: tuple[str, ...]) -> dict[str, Any]:
    """CLI flags (``dotted.key: value``) plus ``--set key=value`` pairs."""
    out = {key: value for key, value in pairs.items() if value is not None}
    for item in sets:
        if "=" not in item:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def config_options(func):
    """Options shared by every command that builds a run config."""
    options = [
        click.option("--config", "config_path", type=click.Path(dir_okay=False),
                     help="YAML config file (sections data, model, train, prune, retrain, export)."),
        config_option("--dataset", "data.name"),
        config_option("--data-dir", "data.data_dir"),
        config_option("--model", "model.name"),
        config_option("--epochs", "train.epochs"),
        config_option("--batch-size", "data.batch_size"),
        config_option("--lr", "train.lr"),
        config_option("--seed", "seed"),
        config_option("--deterministic", "deterministic"),
        config_option("--strategy", "strategy", choice=True),
        config_option("--mixed-precision", "mixed_precision"),
        config_option("--jit-compile", "jit_compile"),
        config_option("--out", "out"),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="Override any config field, e.g. --set train.momentum=0.8 (repeatable)."),
    ]
    return _with(options, func)


def prune_options(func):
    """The pruning method and its amount: shared by ``train`` and ``prune``."""
    options = [
        config_option("--prune", "prune.method", "prune_method"),
        config_option("--sparsity", "prune.sparsity"),
        config_option("--ratios", "prune.ratios"),
        config_option("--ratios-from", "prune.ratios_from"),
        config_option("--preset", "prune.preset"),
        config_option("--macs", "prune.macs"),
        config_option("--allocation", "prune.allocation", choice=True),
        config_option("--round-to", "prune.round_to"),
        config_option("--ignored-layers", "prune.ignored_layers"),
    ]
    return _with(options, func)


def train_options(func):
    """What ``train`` adds: when to prune, how to retrain, the paper models' batch norm, the export."""
    options = [
        config_option("--prune-schedule", "prune.schedule"),
        config_option("--schedule", "retrain.schedule", "retrain_schedule", choice=True),
        config_option("--budget", "retrain.budget"),
        config_option("--pretrained", "train.pretrained", type=click.Path()),
        config_option("--bn-momentum", "model.bn_momentum"),
        config_option("--bn-epsilon", "model.bn_epsilon"),
        config_option("--recalibrate-bn", "prune.recalibrate_bn"),
        config_option("--export", "export.format", "export_format", choice=True),
    ]
    return _with(options, func)


def executor_options(func):
    """Where ``compare`` runs its cells: here in turn, or as Ray tasks (see ``ExecutorConfig``)."""
    from .compare_config import CompareConfig

    options = [
        config_option("--executor", "executor.name", "executor", root=CompareConfig, choice=True),
        config_option("--address", "executor.address", root=CompareConfig),
        config_option("--cpus-per-cell", "executor.cpus_per_cell", root=CompareConfig),
        config_option("--gpus-per-cell", "executor.gpus_per_cell", root=CompareConfig),
        config_option("--max-parallel", "executor.max_parallel", root=CompareConfig),
    ]
    return _with(options, func)


def prune_file_options(func):
    """What ``prune`` adds to :func:`prune_options`: the seed, data for the data criteria, the files."""
    options = [
        config_option("--seed", "seed"),
        config_option("--dataset", "data.name", note="Read only by criteria that score channels on training "
                                                     "batches (taylor_filter, hrank_filter), which need it."),
        config_option("--data-dir", "data.data_dir"),
        config_option("--image-size", "data.image_size"),
        click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config file."),
        click.option("--out", help="Pruned model path. Default: MODEL_pruned.keras beside MODEL."),
    ]
    return _with(options, func)


def _with(options: list[Callable], func: Callable) -> Callable:
    """Apply option decorators so that ``--help`` lists them in the order given."""
    for option in reversed(options):
        func = option(func)
    return func


def build_config(config_path: str | None, sets: tuple[str, ...]):
    """Defaults ← --config YAML ← the config flags the user gave ← --set pairs."""
    return load_config(config_path, overrides(config_flags(click.get_current_context()), sets))


def _config_params(ctx: click.Context) -> list[ConfigOption]:
    return [param for param in ctx.command.params if isinstance(param, ConfigOption)]


def _shown(value: Any) -> str | None:
    """A default as the flag takes it (lists comma-separated); a bool flag pair: on or off; none: not shown."""
    if value is None or value is dataclasses.MISSING:
        return None
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def _without_none(hint: Any) -> Any:
    """``X | None`` → ``X``; other hints unchanged."""
    args = typing.get_args(hint)
    if type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        return rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]
    return hint


def _list_metavar(hint: Any) -> str:
    """``list[float]`` → ``FLOAT,...``: lists are given comma-separated."""
    for arg in (hint, *typing.get_args(hint)):
        if typing.get_origin(arg) is list:
            (item,) = typing.get_args(arg)
            return f"{_TYPES.get(item, click.STRING).name.upper()},..."
    return "TEXT"
