"""Config: defaults, YAML loading, overrides and validation messages that name the field."""

from __future__ import annotations

import pytest

from tfrewind.config import RunConfig, load_config, parse_budget
from tfrewind.errors import ConfigError


def test_defaults_validate_and_run_offline_on_digits():
    config = load_config()
    assert isinstance(config, RunConfig)
    assert config.data.name == "digits"
    assert config.model.name == "small_cnn"


def test_yaml_sections_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 12\n  milestones: [4, 8]\ndata:\n  batch_size: 32\nseed: 3\n")
    config = load_config(path, {"train.lr": "0.05", "data.batch_size": 16})
    assert config.train.epochs == 12 and config.train.milestone_epochs() == [4, 8]
    assert config.train.lr == 0.05
    assert config.data.batch_size == 16  # the flag wins over the file
    assert config.seed == 3


@pytest.mark.parametrize(
    "yaml_text, field",
    [
        ("train:\n  epoch: 3\n", "epoch"),  # unknown key
        ("trian:\n  epochs: 3\n", "trian"),  # unknown section
        ("train:\n  epochs: three\n", "train.epochs"),
        ("train:\n  lr: -1\n", "train.lr"),
        ("train:\n  schedule: linear\n", "train.schedule"),
        ("train:\n  momentum: 1.5\n", "train.momentum"),
        ("data:\n  batch_size: 0\n", "data.batch_size"),
        ("prune:\n  method: random\n  sparsity: 1.0\n", "prune.sparsity"),
        ("prune:\n  method: random\n  sparsity: -0.1\n", "prune.sparsity"),
        ("retrain:\n  budget: lots\n", "retrain.budget"),
        ("train:\n  milestones: [0.5, 80]\n", "train.milestones"),
        ("model:\n  bn_momentum: 1.0\n", "model.bn_momentum"),
        ("model:\n  bn_momentum: -0.1\n", "model.bn_momentum"),
        ("model:\n  bn_epsilon: 0\n", "model.bn_epsilon"),
        ("prune:\n  recalibrate_bn: -1\n", "prune.recalibrate_bn"),
        ("retrain:\n  recalibrate_bn: -5\n", "retrain.recalibrate_bn"),
        ("- just\n- a list\n", "mapping"),
    ],
)
def test_bad_values_name_the_field(tmp_path, yaml_text, field):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(path)


def test_invalid_yaml_and_missing_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_unknown_override_key():
    with pytest.raises(ConfigError, match="unknown config key"):
        load_config(None, {"train.nonsense": 1})


def test_budget_in_epochs_or_share():
    assert parse_budget("72", 160) == 72
    assert parse_budget("45%", 160) == 72
    assert parse_budget(40, 160) == 40
    for bad in ("0", "-3", "abc", "0%"):
        with pytest.raises(ConfigError, match="retrain.budget"):
            parse_budget(bad, 160)


def test_milestones_fractions_follow_epochs():
    config = load_config(None, {"train.epochs": 160})
    assert config.train.milestone_epochs() == [80, 120]


def test_rewind_checkpoint_epochs():
    short = load_config(None, {"train.epochs": 10})
    assert short.train.checkpoint_epoch_list() == list(range(11))
    long = load_config(None, {"train.epochs": 160})
    epochs = long.train.checkpoint_epoch_list()
    assert 0 in epochs and 160 in epochs and 88 not in epochs and 85 in epochs
    listed = load_config(None, {"train.epochs": 10, "train.checkpoint_epochs": "2,5"})
    assert listed.train.checkpoint_epoch_list() == [2, 5]


def test_run_made_before_a_field_existed_still_resumes(tmp_path):
    """A config.yaml without a newer field (here jit_compile) compares as that field's default."""
    import yaml

    from tfrewind.rundir import RunDir

    config = load_config(None, {"out": str(tmp_path / "run")})
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    saved = config.to_dict()
    del saved["jit_compile"]
    (run.path / "config.yaml").write_text(yaml.safe_dump(saved))
    run.check_same_config(config)  # no error
    with pytest.raises(ConfigError, match="seed"):
        run.check_same_config(load_config(None, {"out": str(tmp_path / "run"), "seed": 5}))
