"""Bad input at the edge: every case exits 2 with one line naming the problem, no traceback, nothing written."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from clirun import run_cli
from tfrewind.cli import main


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Bad files, made once, outside the directory each case must leave untouched."""
    root = tmp_path_factory.mktemp("bad_inputs")

    def write(name, text):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    write("unknown_section.yaml", "trainning:\n  epochs: 3\n")
    write("unknown_key.yaml", "train:\n  epoch: 3\n")
    write("wrong_type.yaml", "train:\n  epochs: ten\n")
    write("out_of_range.yaml", "prune:\n  sparsity: 1.5\n")
    write("syntax.yaml", "train: [epochs: 3\n")
    write("python_tag.yaml", "train: !!python/object/apply:os.system ['echo hi']\n")
    write("list.yaml", "- train\n- prune\n")
    write("section_scalar.yaml", "train: 5\n")
    write("garbage.keras", "this is not a zip archive")
    write("garbage.h5", "not hdf5 either")
    write("model.pt", "torch")
    with zipfile.ZipFile(root / "keras3.keras", "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.5.0"}))
        archive.writestr("config.json", "{}")
    with zipfile.ZipFile(root / "no_metadata.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    _save_user_models(root)
    (root / "empty_images").mkdir()
    (root / "not_a_run").mkdir()
    (root / "not_a_run" / "notes.txt").write_text("mine")
    (root / "a_file").write_text("x")
    (root / "pretrained_dir").mkdir()
    old = root / "old_run"
    old.mkdir()
    (old / "config.yaml").write_text("seed: 0\n")
    (old / "run.json").write_text(json.dumps({"tfrewind_version": "0.0.1"}))
    other = root / "other_config_run"
    other.mkdir()
    from tfrewind import __version__
    from tfrewind.config import dump_yaml, load_config

    (other / "config.yaml").write_text(dump_yaml(load_config(None, {"train.epochs": 7, "out": str(other)})))
    (other / "run.json").write_text(json.dumps({"tfrewind_version": __version__}))
    return root


CASES = [
    # CLI flags
    ("epochs_zero", ["--epochs", "0"], "train.epochs"),
    ("epochs_word", ["--epochs", "many"], "many"),
    ("epochs_missing_value", ["--epochs"], "--epochs"),
    ("lr_negative", ["--lr", "-0.1"], "train.lr"),
    ("lr_nan", ["--lr", "nan"], "train.lr"),
    ("batch_zero", ["--batch-size", "0"], "data.batch_size"),
    ("seed_negative", ["--seed", "-1"], "seed"),
    ("sparsity_above_one", ["--sparsity", "1.5"], "prune.sparsity"),
    ("sparsity_zero", ["--sparsity", "0"], "prune.sparsity"),
    ("budget_word", ["--budget", "abc"], "retrain.budget"),
    ("budget_zero", ["--budget", "0"], "retrain.budget"),
    ("budget_beyond_original", ["--epochs", "4", "--budget", "9"], "budget"),
    ("schedule_unknown", ["--schedule", "warm_restarts"], "--schedule"),
    ("prune_unknown", ["--prune", "snip"], "snip"),
    ("prune_schedule_unknown", ["--prune-schedule", "sometimes"], "prune.schedule"),
    ("ratios_with_unstructured", ["--prune", "global_magnitude", "--ratios", "0.5,0.5"], "prune.ratios"),
    ("ratio_out_of_range", ["--prune", "l1_filter", "--ratios", "1.5"], "prune.ratios"),
    ("ratios_not_numbers", ["--prune", "l1_filter", "--ratios", "a,b"], "prune.ratios"),
    ("gradual_random", ["--prune", "random", "--prune-schedule", "gradual"], "gradual"),
    ("soft_unstructured", ["--prune", "magnitude", "--prune-schedule", "soft"], "prune.schedule soft"),
    ("soft_weight_rewind", ["--epochs", "4", "--budget", "2", "--prune", "l1_filter", "--prune-schedule", "soft",
                            "--schedule", "weight_rewind"], "prune.schedule soft"),
    ("prune_none_with_schedule", ["--prune", "none", "--schedule", "one_cycle"], "--prune none"),
    ("prune_none_with_sparsity", ["--prune", "none", "--sparsity", "0.5"], "--prune none"),
    ("weight_rewind_unkept", ["--epochs", "4", "--budget", "2", "--schedule", "weight_rewind",
                              "--set", "train.checkpoint_epochs=none"], "weight_rewind"),
    ("quantize_with_keras", ["--export", "keras", "--set", "export.quantize=int8"], "export.quantize"),
    ("export_unknown", ["--export", "onnx"], "--export"),
    ("set_without_value", ["--set", "novalue"], "KEY=VALUE"),
    ("set_unknown_key", ["--set", "train.nope=1"], "unknown config key"),
    ("set_unknown_section", ["--set", "optimizer.lr=1"], "unknown config key"),
    ("set_bad_bool", ["--set", "deterministic=perhaps"], "deterministic"),
    ("strategy_unknown", ["--set", "strategy=horovod"], "strategy"),
    ("no_such_option", ["--epoch", "3"], "--epoch"),
    # YAML configs
    ("config_missing", ["--config", "{inputs}/missing.yaml"], "does not exist"),
    ("config_unknown_section", ["--config", "{inputs}/unknown_section.yaml"], "trainning"),
    ("config_unknown_key", ["--config", "{inputs}/unknown_key.yaml"], "epoch"),
    ("config_wrong_type", ["--config", "{inputs}/wrong_type.yaml"], "train.epochs"),
    ("config_out_of_range", ["--config", "{inputs}/out_of_range.yaml"], "prune.sparsity"),
    ("config_syntax", ["--config", "{inputs}/syntax.yaml"], "not valid YAML"),
    ("config_python_tag", ["--config", "{inputs}/python_tag.yaml"], "not valid YAML"),
    ("config_list", ["--config", "{inputs}/list.yaml"], "mapping"),
    ("config_section_scalar", ["--config", "{inputs}/section_scalar.yaml"], "train"),
    # model files
    ("model_unknown_name", ["--model", "resnet21"], "unknown model"),
    ("model_missing_file", ["--model", "{inputs}/missing.keras"], "does not exist"),
    ("model_not_zip", ["--model", "{inputs}/garbage.keras"], "corrupt"),
    ("model_no_metadata", ["--model", "{inputs}/no_metadata.keras"], "corrupt"),
    ("model_keras3_damaged", ["--model", "{inputs}/keras3.keras"], "Keras 3 could not load it"),
    ("model_bad_h5", ["--model", "{inputs}/garbage.h5"], "could not be loaded"),
    ("model_wrong_suffix", ["--model", "{inputs}/model.pt"], ".keras or .h5"),
    ("pretrained_missing", ["--pretrained", "{inputs}/nowhere"], "does not exist"),
    ("pretrained_not_a_run", ["--pretrained", "{inputs}/pretrained_dir"], "original/model.keras"),
    # datasets
    ("dataset_unknown", ["--dataset", "no_such_set_xyz"], "unknown dataset"),
    ("image_folder_without_dir", ["--dataset", "image_folder"], "data_dir"),
    ("image_folder_missing_dir", ["--dataset", "image_folder", "--data-dir", "{inputs}/nowhere"], "nowhere"),
    ("image_folder_empty", ["--dataset", "image_folder", "--data-dir", "{inputs}/empty_images"], "empty_images"),
    ("tfds_not_prepared_offline", ["--dataset", "mnist", "--data-dir", "{inputs}/empty_images",
                                   "--set", "data.download=false"], "not prepared"),
    # run directories
    ("resume_without_out", ["--resume"], "--out"),
    ("resume_missing_dir", ["--resume", "--out", "{inputs}/no_run_here"], "not a tfrewind run"),
    ("out_is_a_file", ["--out", "{inputs}/a_file"], "is a file"),
    ("out_not_a_run", ["--out", "{inputs}/not_a_run"], "not a tfrewind run"),
    ("run_from_other_version", ["--out", "{inputs}/old_run"], "0.0.1"),
    ("resume_other_version", ["--resume", "--out", "{inputs}/old_run"], "0.0.1"),
    ("run_with_other_config", ["--out", "{inputs}/other_config_run"], "train.epochs"),
    # pruning/retraining options that used to be checked only after original training (issue 11.5):
    # "--epochs 1" keeps a regression cheap; refused in time, nothing trains and nothing is written
    ("ratios_count_vs_model", ["--epochs", "1", "--prune", "l1_filter", "--ratios", "0.5,0.5"], "prune.ratios"),
    ("ratios_count_iterative", ["--epochs", "1", "--prune", "l1_filter", "--prune-schedule", "iterative",
                                "--ratios", "0.5,0.5"], "prune.ratios"),
    ("ratios_count_pretrained", ["--prune", "l1_filter", "--ratios", "0.5,0.5",
                                 "--pretrained", "{inputs}/small_cnn.keras"], "prune.ratios"),
    ("preset_unknown", ["--epochs", "1", "--prune", "l1_filter", "--set", "prune.preset=resnet99-Z"], "prune.preset"),
    ("preset_of_another_model", ["--epochs", "1", "--prune", "l1_filter", "--set", "prune.preset=resnet56-A"],
     "prune.preset"),
    ("preset_with_iterative", ["--epochs", "1", "--model", "vgg16", "--dataset", "synthetic", "--prune", "l1_filter",
                               "--prune-schedule", "iterative", "--set", "prune.preset=vgg16-A"], "prune.preset"),
    ("preset_with_unstructured", ["--epochs", "1", "--prune", "magnitude", "--set", "prune.preset=vgg16-A"],
     "prune.preset"),
    ("ratios_from_unknown", ["--epochs", "1", "--prune", "random", "--ratios-from", "l1_filter"], "prune.ratios_from"),
    ("ratios_from_unused", ["--epochs", "1", "--prune", "l1_filter", "--ratios-from", "magnitude"], "prune.ratios_from"),
    ("policy_unused_by_filters", ["--epochs", "1", "--prune", "l1_filter", "--set", "prune.policy=xnnpack"],
     "prune.policy"),
    ("policy_unknown", ["--epochs", "1", "--prune", "magnitude", "--set", "prune.policy=fast"], "prune.policy"),
    ("policy_unfit_model", ["--epochs", "1", "--prune", "magnitude", "--set", "prune.policy=xnnpack"], "prune.policy"),
    ("channels_all_blocked", ["--epochs", "1", "--prune", "l1_filter", "--model", "{inputs}/dense_only.keras"],
     "prune.method"),
    ("m_by_n_on_conv1d", ["--epochs", "1", "--prune", "m_by_n", "--model", "{inputs}/conv1d.keras"], "prune.method"),
    ("rounds_without_iterative", ["--epochs", "1", "--set", "prune.rounds=5"], "prune.rounds"),
    ("sparse_with_keras_export", ["--epochs", "1", "--export", "keras", "--set", "export.sparse=true"],
     "export.sparse"),
]


def _save_user_models(root: Path) -> None:
    """Models a user brings (digits-shaped: 8×8×1 in, 10 classes out), untrained: architecture is what counts."""
    from tfrewind._keras import keras
    from tfrewind.models import build_model

    L = keras.layers
    build_model("small_cnn", (8, 8, 1), 10).save(root / "small_cnn.keras")
    # Its only Dense reaches the output: no channel group can lose anything.
    dense = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(), L.Dense(10)])
    dense.save(root / "dense_only.keras")
    conv1d = keras.Sequential([keras.Input((8, 8, 1)), L.Reshape((64, 1)), L.Conv1D(8, 3, name="conv1d"),
                               L.GlobalAveragePooling1D(), L.Dense(10)])
    conv1d.save(root / "conv1d.keras")


def _snapshot(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in root.rglob("*")}


@pytest.mark.parametrize("args, needle", [pytest.param(a, n, id=i) for i, a, n in CASES])
def test_bad_input_is_refused_in_one_line_and_writes_nothing(inputs, tmp_path, capsys, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    before = _snapshot(inputs)
    args = [a.replace("{inputs}", str(inputs)) for a in args]
    code, out, err = run_cli(["train", "--quiet", *args], capsys)
    lines = [line for line in err.strip().splitlines() if line.strip() and not _tf_log(line)]
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("tfrewind: error: ") and needle in lines[0], lines[0]
    assert "Traceback" not in err and "Traceback" not in out
    assert list(tmp_path.iterdir()) == []  # no run directory, nothing else
    assert _snapshot(inputs) == before


@pytest.mark.parametrize("overrides", [
    {"prune.method": "l1_filter", "prune.ratios": "0.5,0.5,0.25,0"},
    {"prune.method": "random_filter", "prune.schedule": "iterative", "prune.rounds": 2, "prune.ratios": "0.5,0,0,0.5"},
    {"prune.method": "random", "prune.ratios_from": "magnitude"},
    {"prune.method": "m_by_n"},
    {"prune.method": "magnitude", "prune.schedule": "gradual"},
    {"prune.method": "global_magnitude", "export.format": "keras"},
    {"prune.method": "global_magnitude", "export.sparse": "false"},
], ids=lambda o: "-".join(str(v) for v in o.values()))
def test_options_that_fit_the_model_pass_the_early_checks(overrides):
    """The checks before training refuse only what pruning would refuse: fitting options pass them."""
    from tfrewind.config import load_config
    from tfrewind.models import build_model
    from tfrewind.pipeline import validate, validate_on_model

    config = load_config(None, overrides)
    validate(config)
    validate_on_model(config, build_model(config.model.name, (8, 8, 1), 10))


def _tf_log(line: str) -> bool:
    """TensorFlow's own C++ log lines (not ours) may reach stderr."""
    return line[:5] in ("I0000", "W0000", "E0000") or line.startswith(("WARNING: All log messages", "INFO: "))


def test_at_least_30_distinct_bad_inputs():
    assert len({tuple(args) for _, args, _ in CASES}) >= 30


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from tfrewind.errors import TfrewindError

    with pytest.raises(TfrewindError):
        main(["--debug", "train", "--model", "resnet21"])


def test_unknown_command_and_missing_argument_are_one_line(capsys):
    for args in (["trian"], ["export"], ["prune"]):
        code, _, err = run_cli(args, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
