"""`tfrewind compare --executor ray` on a local Ray with 2 CPUs: the same cells and files as the local
runner, the same deterministic results, a worker SIGKILLed mid-cell resumed by Ray's retry, a node
that cannot see the study refused at start — and two local compare processes on one study, which
run every cell once and are the Ray run's reference.

Ray starts once for the module; the study is a 2-epoch original and 2 cells of 2 epochs of small_cnn
on digits, run twice (locally, then on Ray).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ray = pytest.importorskip("ray")

from tfrewind.compare import load_compare_config, run_compare  # noqa: E402
from tfrewind.compare_config import ExecutorConfig  # noqa: E402
from tfrewind.compare_ray import check_nodes_see_study, cluster_capacity  # noqa: E402
from tfrewind.errors import ExecutorError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
KILLED = "global_magnitude-s0.7-fine_tune-b2-seed0"


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs whose workers run tests/raykill.py's hook (inactive without its marker)."""
    path = os.pathsep.join([str(TESTS), str(REPO), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": "raykill.install", "env_vars": {"PYTHONPATH": path}})
    yield
    ray.shutdown()


def study_yaml(path: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "train": {"epochs": 2}, "deterministic": True,
        "grid": {"methods": [{"method": "global_magnitude", "sparsity": 0.7}], "schedules": ["fine_tune", "one_cycle"],
                 "budgets": [2], "seeds": [0]},
        "out": str(path.parent / "unused")}))
    return path


@pytest.fixture(scope="module")
def local_pair(tmp_path_factory):
    """The local runner in two compare processes started at once on one study (original + 2 cells).

    Their TensorFlow uses 1 thread, as a 1-CPU Ray task's does, so that the Ray test can compare
    results bitwise with these."""
    root = tmp_path_factory.mktemp("pair")
    config, out = study_yaml(root / "study.yaml"), root / "local"
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    command = [sys.executable, "-m", "tfrewind.cli", "compare", "--config", str(config), "--out", str(out)]
    processes = [subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for _ in range(2)]
    errs = [p.communicate(timeout=900)[1].decode() for p in processes]  # a hang guard only
    assert [p.returncode for p in processes] == [0, 0], errs
    return {"config": config, "out": out, "stderr": errs}


def outcome(run: Path, stages: tuple[str, ...] = ("prune", "retrain")) -> dict:
    from tfrewind.models import load_model_file

    metrics = {}
    for stage in stages:
        data = json.loads((run / stage / "metrics.json").read_text())
        data.pop("seconds", None)
        metrics[stage] = data
    return {"metrics": metrics, "weights": load_model_file(run / stages[-1] / "model.keras").get_weights()}


def assert_same(a: dict, b: dict) -> None:
    assert a["metrics"] == b["metrics"]
    for x, y in zip(a["weights"], b["weights"], strict=True):
        np.testing.assert_array_equal(x, y)


def epochs_per_event_file(log_dir: Path) -> list[list[int]]:
    """The epochs each TensorBoard event file of a stage logged: one file per ``fit`` (attempt)."""
    from tfrewind._keras import tf

    files = sorted(log_dir.glob("events.out.tfevents.*"), key=lambda p: p.name.split(".")[3])
    return [sorted({e.step for e in tf.compat.v1.train.summary_iterator(str(f))
                    for v in e.summary.value if v.tag == "epoch_loss"}) for f in files]


def test_two_compare_processes_on_one_study_run_every_cell_once(local_pair):
    errs, out = local_pair["stderr"], local_pair["out"]
    cells = sorted(p.name for p in (out / "cells").iterdir())
    assert len(cells) == 2
    assert sum(err.count("original training (") for err in errs) == 1  # the other process waited for it
    for name in cells:
        assert sum(err.count(f"{name} done in") for err in errs) == 1, errs
        assert json.loads((out / "cells" / name / "cell.json").read_text())["status"] == "ok"
    assert all("2/2" in err or "left to other processes" in err for err in errs)
    assert (out / "results.csv").read_text().count(",ok,") == 2


def test_ray_gives_the_local_runners_files_and_results_and_resumes_a_killed_worker(local_ray, local_pair, tmp_path):
    out, local = tmp_path / "ray", local_pair["out"]
    out.mkdir()
    (out / "kill-once").write_text(f"{KILLED} retrain 1")  # SIGKILL after the first epoch's backup
    err = io.StringIO()
    config = load_compare_config(local_pair["config"], {"out": str(out), "executor.name": "ray"})
    result = run_compare(config, stream=err)

    # the worker running the cell was killed, mid-cell, and was the cell's named task
    pid, title = (out / "kill-once.fired").read_text().split()
    assert title == f"ray::{KILLED}"
    assert result.statuses == {KILLED: "ran", "global_magnitude-s0.7-one_cycle-b2-seed0": "ran"}
    # Ray's retry resumed it from its backup: epoch 0 logged by the killed attempt, epoch 1 by the retry
    assert epochs_per_event_file(out / "cells" / KILLED / "tensorboard" / "retrain" / "train") == [[0], [1]]
    # the original trained as a Ray task, then the same cells, files and deterministic results as locally
    assert_same(outcome(local / "original_run", ("original",)), outcome(out / "original_run", ("original",)))
    cells = sorted(p.name for p in (local / "cells").iterdir())
    assert sorted(p.name for p in (out / "cells").iterdir()) == cells
    for name in cells:
        assert files(out / "cells" / name) == files(local / "cells" / name)
        assert_same(outcome(local / "cells" / name), outcome(out / "cells" / name))
    assert (out / "results.md").exists() and (out / "results.csv").read_text().count(",ok,") == 2
    # the progress bar over Ray: every cell named with its time, the count and an ETA
    text = err.getvalue()
    assert f"{KILLED} done in" in text and "global_magnitude-s0.7-one_cycle-b2-seed0 done in" in text
    assert "2/2" in text and "ETA" in text and "2 cells run (0 failed)" in text


def files(run: Path) -> list[str]:
    """A run directory's files, TensorBoard's event files (named by host, pid and time) aside."""
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if "tensorboard" not in p.parts or p.is_dir())


def test_a_node_that_cannot_see_the_study_is_refused_at_start(local_ray, tmp_path):
    probe = tmp_path / "study" / "claims" / "probe-x"
    probe.parent.mkdir(parents=True)
    probe.write_text("token")
    assert check_nodes_see_study(ray, probe)  # every node reads it
    probe.unlink()  # what a node without the shared mount sees
    with pytest.raises(ExecutorError, match=r"cannot see the study directory .*study.* every node mounts"):
        check_nodes_see_study(ray, probe)


def test_cells_run_as_many_at_once_as_the_nodes_fit_and_one_no_node_fits_is_refused(local_ray):
    assert cluster_capacity(ray, ExecutorConfig(name="ray", cpus_per_cell=1)) == 2
    assert cluster_capacity(ray, ExecutorConfig(name="ray", cpus_per_cell=2)) == 1
    with pytest.raises(ExecutorError, match=r"no Ray node can hold a cell of 1 CPU\(s\) and 1 GPU\(s\)"):
        cluster_capacity(ray, ExecutorConfig(name="ray", gpus_per_cell=1))  # this Ray has no GPU
