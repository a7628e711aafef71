"""The CLI is generated from the config: defaults and help come from the dataclasses, choices from registries."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from clirun import run_cli
from tfrewind.config import RunConfig, load_config, set_dotted
from tfrewind.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

RUN_FLAGS = ("--dataset", "--data-dir", "--model", "--epochs", "--batch-size", "--lr", "--seed", "--deterministic",
             "--strategy", "--mixed-precision", "--jit-compile", "--out")
"""The flags of train/retrain that set run-config fields (issue 12: all of them generated from the fields)."""
TRAIN_FLAGS = RUN_FLAGS + ("--prune", "--sparsity", "--ratios", "--ratios-from", "--preset", "--macs", "--allocation",
                           "--round-to", "--ignored-layers", "--prune-schedule", "--schedule",
                           "--budget", "--pretrained", "--bn-momentum", "--bn-epsilon", "--recalibrate-bn", "--export")


def help_entries(text: str) -> dict[str, str]:
    """``--help`` output → {each flag of an option: that option's help text, unwrapped}."""
    entries: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if re.match(r"^  -", line):
            options_column, *help_text = re.split(r"\s{2,}", line.strip(), maxsplit=1)
            current = help_text
            for flag in re.findall(r"(?<![\w-])--?[a-z][a-z0-9-]*", options_column):
                entries[flag] = current
        elif current is not None and line.startswith("   "):
            current.append(line.strip())
        else:
            current = None
    return {flag: " ".join(lines) for flag, lines in entries.items()}


def generated_options(command: str):
    from tfrewind.cli import cli
    from tfrewind.cli_options import ConfigOption

    return [p for p in cli.commands[command].params if isinstance(p, ConfigOption)]


def shown_default(entry: str) -> str | None:
    match = re.search(r"\[default: ([^\]]+)\]", entry)
    return match.group(1) if match else None


@pytest.mark.parametrize("command", ["train", "retrain", "prune", "export"])
def test_help_shows_the_config_defaults(capsys, command):
    code, out, _ = run_cli([command, "--help"], capsys)
    assert code == 0
    entries = help_entries(out)
    options = generated_options(command)
    assert options
    defaults = RunConfig()
    for option in options:
        flag = option.opts[0]
        entry = entries[flag]
        value = defaults
        for part in option.key.split("."):
            value = getattr(value, part)
        shown = shown_default(entry)
        if value is None:
            assert shown is None, f"{flag}: {entry}"
        elif isinstance(value, bool):
            assert shown == ("on" if value else "off"), f"{flag}: {entry}"
        else:  # what the help shows, parsed as the user would give it, is the dataclass default
            parsed = RunConfig()
            set_dotted(parsed, option.key, shown)
            again = parsed
            for part in option.key.split("."):
                again = getattr(again, part)
            assert again == value, f"{flag}: shows {shown!r}, the config default is {value!r}"
        text = re.sub(r"\s*\[default: [^\]]+\]", "", entry).strip()
        assert len(text) > 10, f"{flag} has no help: {entry!r}"
        assert "Default" not in text, f"{flag} repeats its default by hand: {entry!r}"


def test_compare_help_shows_the_grid_defaults(capsys):
    from tfrewind.compare_config import GridConfig

    _, out, _ = run_cli(["compare", "--help"], capsys)
    entries = help_entries(out)
    assert [int(s) for s in shown_default(entries["--seeds"]).split(",")] == GridConfig().seeds
    assert shown_default(entries["--out"]) is None  # required: from the YAML or the flag
    assert {o.opts[0] for o in generated_options("compare")} == {
        "--out", "--seeds", "--executor", "--address", "--cpus-per-cell", "--gpus-per-cell", "--max-parallel"}
    assert shown_default(entries["--executor"]) == "local" and shown_default(entries["--address"]) is None


def test_every_run_flag_of_train_and_retrain_is_generated():
    assert {o.opts[0] for o in generated_options("train")} == set(TRAIN_FLAGS)
    assert {o.opts[0] for o in generated_options("retrain")} == set(RUN_FLAGS + ("--schedule", "--budget",
                                                                                   "--pretrained"))


def test_help_changes_with_the_config_default(capsys, monkeypatch):
    """The default shown is read from the dataclass when help is rendered, not written in cli.py."""
    field = next(f for f in dataclasses.fields(RunConfig().train.__class__) if f.name == "epochs")
    monkeypatch.setattr(field, "default", 77)
    _, out, _ = run_cli(["train", "--help"], capsys)
    assert shown_default(help_entries(out)["--epochs"]) == "77"


def test_every_config_field_is_documented():
    from tfrewind.config_fields import field_doc

    def walk(cls, prefix=""):
        for name, hint in typing.get_type_hints(cls).items():
            if dataclasses.is_dataclass(hint):
                yield from walk(hint, f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}"

    missing = [key for key in walk(RunConfig) if not field_doc(key)]
    assert missing == []


# ------------------------------------------------------------------------- registries drive every choice


@pytest.fixture
def new_schedule_and_method():
    """A retraining schedule and a pruning method registered at run time, removed afterwards."""
    from tfrewind.pruning.registry import METHODS, register
    from tfrewind.retraining import RETRAIN_SCHEDULES
    from tfrewind.schedules import ConstantLR
    from tfrewind.training import StageSchedule

    calls: dict[str, list] = {"schedule": [], "method": []}

    def constant(original, budget, config):
        calls["schedule"].append(budget)
        return StageSchedule(ConstantLR(0.0123), momentum=original.momentum)

    def magnitude_again(model, request):
        calls["method"].append(request.sparsity)
        return METHODS.get("magnitude").run(model, dataclasses.replace(request, method="magnitude"))

    RETRAIN_SCHEDULES.register("constant_test")(constant)
    register("magnitude_test", structured=False)(magnitude_again)
    try:
        yield calls
    finally:
        RETRAIN_SCHEDULES.unregister("constant_test")
        METHODS.unregister("magnitude_test")


def test_a_schedule_and_a_method_registered_at_run_time_are_cli_choices(new_schedule_and_method, tmp_path, capsys):
    code, out, _ = run_cli(["train", "--help"], capsys)
    entries = help_entries(out)
    assert re.search(r"^  --schedule \[[^\]]*\|constant_test\]", out, re.M)  # click lists a Choice's names
    assert "magnitude_test" in entries["--prune"]
    run = tmp_path / "run"
    code, out, err = run_cli(["train", "--epochs", "1", "--prune", "magnitude_test", "--sparsity", "0.5",
                              "--schedule", "constant_test", "--budget", "1", "--export", "none", "--quiet",
                              "--out", run], capsys)
    assert code == 0, err
    calls = new_schedule_and_method
    assert calls["method"] == [0.5] and set(calls["schedule"]) == {1}  # built (checked, then used) for 1 epoch
    retrained = json.loads((run / "retrain" / "metrics.json").read_text())
    assert retrained["epochs"] == 1 and 0.0 <= retrained["test_accuracy"] <= 1.0
    from tbreader import read_scalars

    lrs = read_scalars(run / "tensorboard" / "retrain" / "train")["epoch_learning_rate"]
    assert [round(v, 6) for _, v in lrs] == [0.0123]


def test_unregistered_names_are_gone_again(capsys):
    """After the fixture's cleanup other tests see the built-in choices only."""
    code, out, err = run_cli(["train", "--schedule", "constant_test"], capsys)
    assert code == 2 and "constant_test" in err
    _, out, _ = run_cli(["train", "--help"], capsys)
    assert "magnitude_test" not in out


def test_an_original_schedule_registered_at_run_time_is_a_config_choice():
    from tfrewind.schedules import ConstantLR
    from tfrewind.training import ORIGINAL_SCHEDULES, StageSchedule, original_schedule

    with pytest.raises(ConfigError, match="train.schedule"):
        load_config(overrides={"train.schedule": "flat_test"})

    @ORIGINAL_SCHEDULES.register("flat_test")
    def flat(config, steps_per_epoch):
        return StageSchedule(ConstantLR(config.lr), momentum=config.momentum, epochs=config.epochs)

    try:
        config = load_config(overrides={"train.schedule": "flat_test", "train.lr": 0.03})
        stage = original_schedule(config.train, steps_per_epoch=5)
        assert float(stage.lr(0)) == pytest.approx(0.03) and float(stage.lr(149)) == pytest.approx(0.03)
    finally:
        ORIGINAL_SCHEDULES.unregister("flat_test")
    with pytest.raises(ConfigError, match="train.schedule"):
        load_config(overrides={"train.schedule": "flat_test"})


def test_built_in_names_are_declared_where_help_can_read_them():
    """Every built-in registered where TensorFlow is imported is also known before, so --help lists it."""
    import tfrewind.pruning  # noqa: F401  (registers the methods)
    import tfrewind.retraining  # noqa: F401
    import tfrewind.training  # noqa: F401
    from tfrewind import choices

    for registry in (choices.RETRAIN_SCHEDULES, choices.PRUNE_METHODS, choices.ORIGINAL_SCHEDULES,
                     choices.STRATEGIES):
        assert registry.implemented() == registry.declared(), registry.kind


@pytest.mark.parametrize("args, listed", [(["--help"], "compare"), (["train", "--help"], "lr_rewind"),
                                          (["schedule", "--help"], "one_cycle"), (["export", "--help"], "saved_model")])
def test_help_does_not_import_tensorflow(args, listed):
    """--help lists every choice from the registries without paying for TensorFlow (seconds to minutes)."""
    code = ("import sys\nfrom tfrewind.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
            "print('TF' if 'tensorflow' in sys.modules else 'no TF')" % (args,))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert listed in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "no TF"
