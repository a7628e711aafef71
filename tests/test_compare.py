"""`tfrewind compare` / `tfrewind report`: a 2×2×1×1 grid end to end, resuming, failed cells, configs."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tfrewind.cli import main
from tfrewind.compare import Progress, load_compare_config, run_compare
from tfrewind.config import DataConfig
from tfrewind.data import load_data

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
RESULT_FILES = ("results.csv", "results.md", "accuracy_vs_budget.png", "schedules_b1.png")


def cli(args, capsys):
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def metrics(run: Path, stage: str) -> dict:
    return json.loads((run / stage / "metrics.json").read_text())


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """2 methods × 2 schedules × 1 budget × 1 seed after a 3-epoch original, through the CLI."""
    root = tmp_path_factory.mktemp("compare")
    config = write_yaml(root / "tiny.yaml", {
        "description": "tiny test grid",
        "train": {"epochs": 3},
        "grid": {"methods": [{"method": "global_magnitude", "sparsity": 0.7}, "random:0.7"],
                 "schedules": ["fine_tune", "one_cycle"], "budgets": [1], "seeds": [0]},
        "out": str(root / "ignored"),
    })
    out = root / "study"
    err = io.StringIO()  # capsys is function-scoped: capture the progress lines by hand

    with contextlib.redirect_stderr(err):
        try:
            main(["compare", "--config", str(config), "--out", str(out)])
        except SystemExit as exc:
            assert exc.code in (0, None), err.getvalue()
    return {"config": config, "out": out, "stderr": err.getvalue()}


def test_grid_writes_one_run_directory_per_cell_and_one_original(study):
    out = study["out"]
    cells = sorted(p.name for p in (out / "cells").iterdir())
    assert len(cells) == 4
    assert {c.split("-")[0] for c in cells} == {"global_magnitude", "random"}
    for cell in cells:
        run = out / "cells" / cell
        assert (run / "retrain" / "metrics.json").exists()
        # every cell starts from the one shared original run
        assert yaml.safe_load((run / "config.yaml").read_text())["train"]["pretrained"] == str(out / "original_run")
    assert metrics(out / "original_run", "original")["epochs"] == 3
    assert not (out / "cells" / cells[0] / "original" / "checkpoints").exists()  # not retrained per cell


def test_progress_names_cells_with_an_eta(study):
    err = study["stderr"]
    assert "original training" in err
    assert "4/4" in err and "ETA" in err
    assert "random-s0.7-one_cycle-b1-seed0" in err


def test_progress_bar_counts_finished_cells_and_prints_failures():
    """What a user sees while a resumed sweep runs, on a stream that is not a terminal (a log file)."""
    err = io.StringIO()
    bar = Progress(4, err)
    bar.start(todo=2)  # two cells were finished by an earlier run
    bar.skip()
    bar.skip()
    bar.begin("cell-a")
    bar.end("cell-a", "ran")
    bar.begin("cell-b")
    bar.end("cell-b", "failed", "CheckpointError: no weights after epoch 1")
    bar.finish()
    text = err.getvalue()
    assert "2 of 4 cells already finished" in text
    assert "2/4 cell-a" in text and "3/4 cell-b" in text and "4/4" in text and "ETA" in text
    assert "cell-a done in" in text
    assert "cell-b FAILED after" in text and "CheckpointError: no weights after epoch 1" in text
    assert "2 cells run (1 failed), 2 skipped" in text
    quiet = io.StringIO()
    silent = Progress(1, quiet, enabled=False)
    silent.start(todo=1)
    silent.begin("x")
    silent.end("x", "failed", "boom")
    silent.finish()
    assert quiet.getvalue() == ""


def test_csv_and_markdown_agree_with_the_run_directories(study):
    out = study["out"]
    for name in RESULT_FILES:
        assert (out / name).exists(), name
    for name in RESULT_FILES[2:]:
        assert (out / name).read_bytes()[:8] == PNG
    rows = read_csv(out / "results.csv")
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    dense = metrics(out / "original_run", "original")["test_accuracy"]
    for row in rows:
        run = out / "cells" / row["cell"]
        assert row["method"] in row["cell"] and row["schedule"] in row["cell"]
        assert float(row["accuracy_after_retrain"]) == metrics(run, "retrain")["test_accuracy"]
        assert float(row["accuracy_before_retrain"]) == metrics(run, "prune")["test_accuracy"]
        assert int(row["nonzero_params"]) == metrics(run, "prune")["report"]["nonzero_params_after"]
        assert int(row["flops"]) == metrics(run, "prune")["report"]["flops_after"]
        assert float(row["accuracy_unpruned"]) == dense
        assert int(row["budget_epochs"]) == 1 and row["seed"] == "0" and float(row["cell_seconds"]) > 0
    md = (out / "results.md").read_text()
    assert f"{100 * dense:.2f} %" in md
    table = [line for line in md.splitlines() if line.startswith("| global_magnitude-s0.7 | 1 |")]
    assert len(table) == 1 and table[0].count("|") == 7  # method, budget, (final, best) × fine_tune, one_cycle
    gm_ft = next(r for r in rows if r["cell"].startswith("global_magnitude") and r["schedule"] == "fine_tune")
    assert f"{100 * float(gm_ft['accuracy_after_retrain']):.2f}" in table[0]
    assert "| fine_tune final | fine_tune best |" in md
    for row in rows:  # one retraining epoch: its test accuracy is the best and the final one
        retrain = metrics(out / "cells" / row["cell"], "retrain")
        assert float(row["accuracy_best_epoch"]) == retrain["history"]["test_accuracy"][0] == \
            float(row["accuracy_after_retrain"])
        # by default BN statistics are recalibrated after pruning (on at most one epoch), not after retraining
        recalibrated = metrics(out / "cells" / row["cell"], "prune")["recalibrate_bn"]
        assert recalibrated["ran"] and recalibrated["batches"] == min(50, retrain["steps_per_epoch"])
        assert not retrain["recalibrate_bn"]["ran"]
    assert "recalibrated after pruning on 50 training batches" in md
    assert "accuracy_vs_budget.png" in md and "schedules_b1.png" in md


def test_rerun_skips_every_finished_cell(study, capsys):
    out = study["out"]
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("metrics.json")}
    assert len(stamps) >= 1 + 4 * 3  # original + per cell: original (pretrained), prune, retrain
    config = load_compare_config(study["config"], {"out": str(out)})
    result = run_compare(config)
    assert set(result.statuses.values()) == {"skipped"} and len(result.statuses) == 4
    assert {p: p.stat().st_mtime_ns for p in out.rglob("metrics.json")} == stamps
    assert "4 of 4 cells already finished" in capsys.readouterr().err


def test_report_rebuilds_the_same_files(study, capsys):
    out = study["out"]
    before = {name: (out / name).read_bytes() for name in RESULT_FILES}
    for name in RESULT_FILES:
        (out / name).unlink()
    code, stdout, err = cli(["report", str(out)], capsys)
    assert code == 0, err
    for name in RESULT_FILES:
        assert (out / name).exists() and name in stdout
    assert (out / "results.csv").read_bytes() == before["results.csv"]
    assert (out / "results.md").read_bytes() == before["results.md"]


def test_a_failed_cell_is_recorded_and_the_others_run(study, tmp_path, capsys):
    # A dense run whose rewind checkpoints are gone: weight_rewind cells fail at run time, fine_tune ones work.
    original = tmp_path / "dense"
    shutil.copytree(study["out"] / "original_run", original)
    shutil.rmtree(original / "original" / "checkpoints")
    config = write_yaml(tmp_path / "fail.yaml", {
        "train": {"epochs": 3, "pretrained": str(original)},
        "grid": {"methods": ["global_magnitude:0.7"], "schedules": ["weight_rewind", "fine_tune"],
                 "budgets": [2], "seeds": [0]},
        "out": str(tmp_path / "fail"),
    })
    code, _, err = cli(["compare", "--config", str(config)], capsys)
    assert code == 0, err
    assert "FAILED" in err and "1 cell(s) failed" in err
    rows = {r["schedule"]: r for r in read_csv(tmp_path / "fail" / "results.csv")}
    assert rows["fine_tune"]["status"] == "ok" and float(rows["fine_tune"]["accuracy_after_retrain"]) > 0
    assert rows["weight_rewind"]["status"] == "failed" and "epoch 1" in rows["weight_rewind"]["error"]
    assert "weight_rewind" in (tmp_path / "fail" / "results.md").read_text().split("## Failed cells")[1]
    assert not (tmp_path / "fail" / "original_run").exists()  # the given dense run was used, not retrained
    # a re-run retries the failed cell only
    result = run_compare(load_compare_config(config))
    assert result.statuses == {"global_magnitude-s0.7-weight_rewind-b2-seed0": "failed",
                               "global_magnitude-s0.7-fine_tune-b2-seed0": "skipped"}


@pytest.mark.parametrize("override, message", [
    ("grid.schedules=fine_tune,lr_rewnd", "lr_rewnd"),
    ("grid.methods=magnitud:0.9", "magnitud"),
    ("grid.budgets=0", "grid.budgets"),
    ("grid.budgets=50%,15", "grid.budgets"),          # both resolve to 15 of 30 epochs
    ("grid.budgets=45", "cannot exceed"),              # lr_rewind replays at most the 30 original epochs
    ("grid.methods=global_magnitude:1.5", "sparsity"),
    ("grid.methods=random:preset=vgg16-A", "prune.ratios"),
    ("grid.methods=l1_filter:preset=resnet99-Z", "resnet99-Z"),
    ("grid.methods=l1_filter:macs=1.5", "prune.macs"),
    ("grid.methods=global_magnitude:macs=0.5", "does not use it"),
    ("grid.seeds=", "grid.seeds"),
    ("train.lr=-1", "train.lr"),
    ("executor.cpus_per_cell=2", "only --executor ray"),   # a Ray setting with the local executor
    ("executor.name=rai", "rai"),
])
def test_bad_grids_fail_up_front_in_one_line(tmp_path, capsys, override, message):
    out = tmp_path / "never"
    code, _, err = cli(["compare", "--config", str(ROOT / "configs/compare/digits.yaml"), "--out", str(out),
                        "--set", override], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()  # nothing trained, nothing written


def test_dry_run_lists_the_cells_and_trains_nothing(tmp_path, capsys):
    out = tmp_path / "dry"
    code, stdout, err = cli(["compare", "--config", str(ROOT / "configs/compare/digits.yaml"), "--out", str(out),
                             "--seeds", "4,5", "--set", "grid.budgets=50%", "--dry-run", "--measure-steps", "0"],
                            capsys)
    assert code == 0, err
    cells = [line.split()[-1] for line in stdout.splitlines() if line.startswith("pending")]
    config = load_compare_config(ROOT / "configs/compare/digits.yaml")
    assert len(cells) == len(config.grid.methods) * len(config.grid.schedules) * 1 * 2
    assert all(c.endswith(("seed4", "seed5")) and "-b15-" in c for c in cells)
    assert not out.exists()


def test_dry_run_estimates_only_what_is_left_from_steps_measured_here(study, capsys):
    # the study ran seed 0 (4 cells of 1 epoch after a 3-epoch original); seed 1 is still to run
    code, stdout, err = cli(["compare", "--config", str(study["config"]), "--out", str(study["out"]),
                             "--seeds", "0,1", "--dry-run", "--measure-steps", "2"], capsys)
    assert code == 0, err
    lines = stdout.splitlines()
    assert sum(line.startswith("done") for line in lines) == 4 and sum(line.startswith("pending") for line in lines) == 4
    assert "8 cells (4 done, 4 to run)" in stdout and "(trained)" in stdout
    estimate = lines[-1]
    train_examples = sum(int(y.shape[0]) for _, y in load_data(DataConfig(name="digits"), seed=0).train)
    assert f"for 4 epochs of {-(-train_examples // 64)} steps" in estimate  # 4 pending cells × 1 epoch, no original
    assert re.search(r"measured here on (CPU|GPU): .+: 2 training steps of small_cnn at batch 64 took [0-9.]+ s/step",
                     estimate), estimate
    assert re.match(r"estimate: [0-9.,]+ (GPU-)?hours on this device", estimate)


def test_dry_run_of_a_fresh_study_counts_the_original_and_every_budget(tmp_path, capsys):
    path = ROOT / "configs/compare/digits.yaml"
    code, stdout, err = cli(["compare", "--config", str(path), "--out", str(tmp_path / "fresh"), "--dry-run",
                             "--measure-steps", "1"], capsys)
    config = load_compare_config(path, {"out": str(tmp_path / "fresh")})
    epochs = config.base.train.epochs + sum(cell.budget_epochs for cell in config.cells())
    assert code == 0 and f"for {epochs:,} epochs of " in stdout, err
    assert f"({config.base.train.epochs} epochs to train)" in stdout and not (tmp_path / "fresh").exists()


def test_report_on_a_directory_that_is_not_a_study(tmp_path, capsys):
    code, _, err = cli(["report", str(tmp_path)], capsys)
    assert code == 2 and "compare.yaml" in err


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_compare_configs_load_and_validate(path, tmp_path):
    config = load_compare_config(path, {"out": str(tmp_path / "o")})
    grid = config.grid
    cells = config.cells()
    assert len(cells) == len(grid.methods) * len(grid.schedules) * len(grid.budgets) * len(grid.seeds)
    # one seed on ImageNet, as the paper's scripts ran it; three elsewhere
    assert len(grid.seeds) >= (1 if config.base.data.name == "imagenet2012" else 3) and len(grid.budgets) >= 2
    assert "fine_tune" in grid.schedules and {"lr_rewind", "one_cycle"} & set(grid.schedules)


def test_application_study_prunes_to_a_macs_target_and_its_model_builds(tmp_path):
    from tfrewind.compare_report import cell_row
    from tfrewind.data import load_data
    from tfrewind.models import build_model

    config = load_compare_config(ROOT / "configs/compare/digits-mobilenetv2.yaml", {"out": str(tmp_path / "o")})
    cells = config.cells()
    assert {c.config.prune.method for c in cells} == {"l1_filter", "random_filter"}
    assert {c.config.prune.macs for c in cells} == {0.5} and all("-m0.5-" in c.name for c in cells)
    assert cell_row(cells[0], {})["sparsity"] == ""  # a MACs target, not the base's unused sparsity
    data = load_data(config.base.data, seed=0)
    model = build_model(config.base.model.name, data.input_shape, data.num_classes)
    assert model.input_shape[1:] == (32, 32, 1) and model.output_shape[-1] == 10


PAPER_SCHEDULES = {"fine_tune", "lr_rewind", "scaled_lr_restart", "one_cycle"}


def test_the_papers_whole_grid_is_shipped():
    names = {p.stem for p in (ROOT / "configs" / "paper").glob("*.yaml")}
    assert names >= {"cifar10-resnet56-A", "cifar10-resnet56-B", "cifar10-resnet110-A", "cifar10-resnet110-B",
                     "cifar10-vgg16-A", "cifar10-resnet56-unstructured", "cifar10-resnet110-unstructured",
                     "imagenet-resnet34"}


@pytest.mark.parametrize("name", ["resnet56", "resnet110", "vgg16"])
def test_paper_cifar_configs_follow_the_paper(name, tmp_path):
    matches = sorted((ROOT / "configs" / "paper").glob(f"cifar10-{name}-*.yaml"))
    assert matches, f"no configs/paper/cifar10-{name}-*.yaml"
    for path in matches:
        config = load_compare_config(path, {"out": str(tmp_path / "o")})
        base, grid = config.base, config.grid
        assert base.data.name == "cifar10" and base.model.name == name
        assert (base.train.epochs, base.data.batch_size, base.train.lr) == (160, 64, 0.1)
        assert base.train.milestone_epochs() == [80, 120] and base.train.weight_decay == 1e-4
        if path.stem.endswith("-unstructured"):  # NPTM weight-level: --percent 0.5 … 0.95
            assert [(m.method, m.sparsity) for m in grid.methods] == \
                [("global_magnitude", s) for s in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)]
        else:  # L1-norm filters at the preset the file names, against random filters at the same ratios
            version = path.stem.rsplit("-", 1)[1]
            assert [(m.method, m.preset) for m in grid.methods] == \
                [("l1_filter", f"{name}-{version}"), ("random_filter", f"{name}-{version}")]
        assert set(grid.schedules) >= PAPER_SCHEDULES
        epochs = sorted(c.budget_epochs for c in config.cells() if c.seed == grid.seeds[0]
                        and c.method == grid.methods[0] and c.schedule == "fine_tune")
        assert epochs == list(range(40, 153, 16)) and len(grid.seeds) == 3


def test_paper_imagenet_config_follows_the_papers_scripts(tmp_path):
    config = load_compare_config(ROOT / "configs/paper/imagenet-resnet34.yaml", {"out": str(tmp_path / "o")})
    base, grid = config.base, config.grid
    assert (base.data.name, base.data.image_size, base.data.augment) == ("imagenet2012", 224, "imagenet")
    assert base.model.name == "resnet34" and base.data.batch_size == 256
    assert (base.train.epochs, base.train.lr, base.train.milestone_epochs()) == (90, 0.1, [30, 60])
    assert base.retrain.fine_tune_lr == 0.001
    assert {(m.method, m.preset) for m in grid.methods} == \
        {(method, f"resnet34-{v}") for method in ("l1_filter", "random_filter") for v in "ABCD"}
    assert set(grid.schedules) >= PAPER_SCHEDULES
    assert {c.budget_epochs for c in config.cells()} == {45, 90}  # FT 90 epochs, the others 45, in the scripts


def test_tables_show_the_final_and_the_best_epochs_test_accuracy(tmp_path):
    """Cells whose retraining peaked before its last epoch: final and best differ, each in its own column."""
    from tfrewind.compare_report import write_results

    config = load_compare_config(write_yaml(tmp_path / "c.yaml", {
        "train": {"epochs": 4}, "export": {"format": "none"},
        "grid": {"methods": ["random:0.5"], "schedules": ["fine_tune"], "budgets": [3], "seeds": [0, 1]},
        "out": str(tmp_path / "study")}))
    per_seed = {0: [0.50, 0.90, 0.80], 1: [0.60, 0.70, 0.70]}  # best 0.90 / 0.70, final 0.80 / 0.70
    for cell in config.cells():
        accuracies = per_seed[cell.seed]
        (cell.path / "retrain").mkdir(parents=True)
        (cell.path / "retrain" / "metrics.json").write_text(json.dumps(
            {"test_accuracy": accuracies[-1], "history": {"test_accuracy": accuracies}}))
    rows, _ = write_results(config)
    assert [(r["accuracy_after_retrain"], r["accuracy_best_epoch"]) for r in rows] == [(0.8, 0.9), (0.7, 0.7)]
    md = (tmp_path / "study" / "results.md").read_text()
    assert "final" in md and "best epoch" in md and "NPTM" in md and "test set" in md
    row = next(line for line in md.splitlines() if line.startswith("| random-s0.5 | 3 |"))
    assert row.endswith("| 75.00 ± 7.07 (–) | 80.00 ± 14.14 |")  # final (Δ: no unpruned run here), then best
    detail = next(line for line in md.splitlines() if line.startswith("| random-s0.5 | fine_tune |"))
    assert "| 75.00 ± 7.07 | 80.00 ± 14.14 |" in detail


def test_an_unreachable_ray_cluster_fails_in_one_line_before_any_training(tmp_path, capsys):
    out = tmp_path / "study"
    code, _, err = cli(["compare", "--config", str(ROOT / "configs/compare/digits.yaml"), "--out", str(out),
                        "--executor", "ray", "--address", "127.0.0.1:1"], capsys)  # nothing listens on port 1
    assert code == 2 and "no Ray cluster answers" in err and len(err.strip().splitlines()) == 1, err
    assert not (out / "original_run").exists()
