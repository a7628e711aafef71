"""Prune-and-retrain under tf.distribute: MirroredStrategy on two logical CPUs, and
MultiWorkerMirroredStrategy with two local worker processes on loopback. Masks and final sparsity
must agree with the single-device run (all start from the same single-device original, so they are
equal by construction), and so must what retraining does: the weights after retraining end up
where the single-device run put them, up to batch norm (each replica normalises its half of the
global batch; measured: at most ~0.25 of the distance training moved a layer, ~0.02 without BN)."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfrewind.config import load_config
from tfrewind.pipeline import train

SCRIPT = Path(__file__).parent / "scripts" / "run_pipeline.py"
ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def single_device(tmp_path_factory):
    base = tmp_path_factory.mktemp("dist")
    dense = train(load_config(None, {"out": str(base / "dense"), "train.epochs": 2, "prune.method": "none",
                                     "export.format": "none"}), verbose=0).run_dir
    # One device needs no logical devices or TF_CONFIG: the reference runs in this process.
    spec = importlib.util.spec_from_file_location("run_pipeline", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    reference = script.prune_and_retrain("default", str(dense), str(base / "single"))
    return dense, json.loads(json.dumps(reference))  # as the other runs' results read back from JSON


def _run(command, env=None):
    completed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _assert_same_pruning(reference, other):
    assert other["masks"].keys() == reference["masks"].keys()
    for name, mask in reference["masks"].items():
        assert other["masks"][name] == mask, f"mask of {name} differs"
    assert other["sparsity"]["sparsity"] == pytest.approx(reference["sparsity"]["sparsity"])


def _assert_trained_like_one_device(reference, other):
    """Same start, then every layer ends far closer to the single-device weights than training moved it."""
    assert other["start"] == reference["start"]  # the same pruned weights before retraining
    assert other["weights"].keys() == reference["weights"].keys()
    for name, weights in reference["weights"].items():
        for index, (want, got, start) in enumerate(zip(weights, other["weights"][name], reference["start"][name],
                                                       strict=True)):
            want, got, start = np.asarray(want), np.asarray(got), np.asarray(start)
            moved = np.linalg.norm(want - start)
            assert moved > 0, f"{name}[{index}] did not change in retraining"
            apart = np.linalg.norm(got - want)
            assert apart < 0.5 * moved, f"{name}[{index}]: {apart:.3g} from the one-device weights, moved {moved:.3g}"
    assert other["retrain"] == pytest.approx(reference["retrain"], abs=0.1)  # test accuracy
    assert other["recalibrated"] == reference["recalibrated"]  # BN recalibration ran on every replica/worker
    assert reference["recalibrated"]["ran"] and reference["recalibrated"]["batches"] == 5


def test_mirrored_on_two_logical_cpus(single_device, tmp_path):
    dense, reference = single_device
    result = tmp_path / "mirrored.json"
    _run([sys.executable, str(SCRIPT), "mirrored", str(dense), str(tmp_path / "run"), str(result), "2"], env=_env())
    mirrored = json.loads(result.read_text())
    _assert_same_pruning(reference, mirrored)
    _assert_trained_like_one_device(reference, mirrored)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_with_two_local_processes(single_device, tmp_path):
    dense, reference = single_device
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        command = [sys.executable, str(SCRIPT), "multi_worker", str(dense), str(tmp_path / f"run{index}"),
                   str(tmp_path / f"w{index}.json")]
        processes.append(subprocess.Popen(command, cwd=ROOT, env=_env(TF_CONFIG=tf_config),
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
    results = [json.loads((tmp_path / f"w{index}.json").read_text()) for index in range(2)]
    for result in results:
        _assert_same_pruning(reference, result)
        _assert_trained_like_one_device(reference, result)
    assert results[0]["weights"] == results[1]["weights"]  # the workers hold bitwise-identical replicas
