"""``tfrewind compare --executor ray``: each pending cell one Ray task, on this machine or a cluster.

The driver (the compare process) connects to Ray and checks the study's storage first (a bad cluster
fails in seconds, before any training), then does what the local runner does — the original once,
each cell claimed before it runs (:mod:`tfrewind.compare_claims`), the results — except that the
original training and each claimed cell run as Ray tasks named after them (the dashboard lists one
task per cell; the worker's process title is ``ray::<cell>``), with ``--cpus-per-cell`` and
``--gpus-per-cell`` as their resources and at most ``--max-parallel`` cells at once (default: what
the cluster's nodes fit when the sweep starts, so that cells are claimed when they start, not all up
front). Without ``--address`` it starts Ray on this
machine; ``--address auto`` or ``ray://HEAD:10001`` joins a running cluster.

**Same files, same results.** A task runs the local runner's own function
(:func:`~tfrewind.compare_sweep.run_cell_here`) in the driver's working directory, so the cell's run
directory is the same. Deterministic results depend on TensorFlow's thread count (checked on digits:
1 and 2 intra-op threads give different losses), so a task's TensorFlow uses as many threads as the
task has CPUs (``TF_NUM_INTRAOP_THREADS``/``TF_NUM_INTEROP_THREADS``): a cell's result does not depend
on the node it lands on, and equals the local runner's on a machine with that many cores.

**Shared storage.** Results live on storage every node mounts at the same path. Before any cell, one
tiny task per node reads a random token the driver wrote under ``OUT/claims/``: a node that cannot is
an :class:`~tfrewind.errors.ExecutorError` at start, not a lost cell; every cell task checks it again
(nodes an autoscaler adds later), and such a cell is recorded as failed with that message.

**Faults.** A worker killed mid-cell (SIGKILL, out of memory, a lost node) is retried by Ray up to
:data:`TASK_RETRIES` times, and the retry resumes the cell from its stage's backup
(``BackupAndRestore``), because a run directory resumes. When the retries run out, the cell's
``error.json`` records the crash and the other cells go on; re-running the command retries it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from .compare_cells import cell_error
from .compare_claims import CLAIMS_DIR
from .compare_config import ORIGINAL_DIR, Cell, CompareConfig, ExecutorConfig
from .compare_sweep import Sweep, record_failure, run_cell_here
from .config import RunConfig
from .errors import ExecutorError

TASK_RETRIES = 2
"""Ray re-runs a cell whose worker died this many times (each run resumes from the cell's backup)."""


class RayExecutor:
    """The ``ray`` executor (see module doc): connected, and the study's storage checked, on entry."""

    def __init__(self, config: CompareConfig, verbose: int = 0):
        self.config, self.executor = config, config.executor
        self.worker_output = verbose > 0  # Keras' epoch lines of the workers, shown with --verbose
        self.ray = _import_ray()
        self.started = False
        self.limit = 0
        self.probe = Path()

    def __enter__(self) -> "RayExecutor":
        self.started = _connect(self.ray, self.executor.address, self.worker_output)
        self.probe = _write_probe(self.config.out_dir)
        try:
            check_nodes_see_study(self.ray, self.probe)
            self.limit = self.executor.max_parallel or cluster_capacity(self.ray, self.executor)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.probe.unlink(missing_ok=True)
        if self.started:
            self.ray.shutdown()

    def train(self, config: RunConfig, verbose: int) -> None:
        """The original training, as one task named after its directory (retried like a cell)."""
        ref = self._task(_original_task, ORIGINAL_DIR).remote(config, verbose, *self._where())
        try:
            self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:
            raise (exc.cause if isinstance(exc.cause, Exception) else exc) from None
        except self.ray.exceptions.RayError as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            raise ExecutorError(f"the original training's Ray worker died on every attempt ({type(exc).__name__}: "
                                f"{first}); re-run the command to resume it") from None

    def run(self, sweep: Sweep) -> None:
        """Keep up to ``limit`` claimed cells running; record each as it ends."""
        running: dict[Any, tuple[Cell, float]] = {}
        queue = iter(sweep.cells)
        try:
            while True:
                while len(running) < self.limit and (cell := _next_to_run(sweep, queue)) is not None:
                    ref = self._task(_cell_task, cell.name).remote(cell, sweep.verbose, *self._where())
                    running[ref] = (cell, time.perf_counter())
                if not running:
                    return
                ready, _ = self.ray.wait(list(running), num_returns=1)
                for ref in ready:
                    cell, began = running.pop(ref)
                    sweep.finish(cell, _outcome(self.ray, ref, cell, began), cell_error(cell))
        finally:
            for ref in running:  # interrupted: stop the cells this driver started (their claims are released)
                self.ray.cancel(ref, force=True)

    def _task(self, function: Any, name: str) -> Any:
        """``function`` as a Ray task named ``name``, with the cell's resources, retries and threads."""
        threads = str(max(1, int(self.executor.cpus_per_cell)))
        return self.ray.remote(function).options(
            name=name, num_cpus=self.executor.cpus_per_cell, num_gpus=self.executor.gpus_per_cell,
            max_retries=TASK_RETRIES,
            runtime_env={"env_vars": {"TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": threads}})

    def _where(self) -> tuple[str, str, str]:
        return os.getcwd(), str(self.probe), self.probe.read_text()


def _next_to_run(sweep: Sweep, queue: Any) -> Cell | None:
    return next((cell for cell in queue if sweep.take(cell)), None)


def _outcome(ray: Any, ref: Any, cell: Cell, began: float) -> str:
    """``ran``/``failed`` as the task reported it, or ``failed`` (recorded here) if the task itself failed."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:  # raised in the task before the cell ran (ExecutorError)
        cause = exc.cause if exc.cause is not None else exc
        error = f"{type(cause).__name__}: {cause}"
    except ray.exceptions.RayError as exc:  # the worker died (SIGKILL, OOM, node lost) on every attempt
        first = (str(exc).strip().splitlines() or [""])[0]
        error = f"{type(exc).__name__}: {first} (after {TASK_RETRIES} retries)"
    record_failure(cell, error, time.perf_counter() - began)
    return "failed"


# ----------------------------------------------------------------------------- in the worker


def _original_task(config: RunConfig, verbose: int, cwd: str, probe: str, token: str) -> None:
    """A Ray task: the study's original training, in the driver's working directory."""
    _enter_study(cwd, probe, token)
    from .pipeline import train

    train(config, verbose=verbose)


def _cell_task(cell: Cell, verbose: int, cwd: str, probe: str, token: str) -> str:
    """A Ray task: one cell, as the local runner runs it, in the driver's working directory."""
    _enter_study(cwd, probe, token)
    from .pipeline import train

    return run_cell_here(cell, train, verbose)


def _probe_task(cwd: str, probe: str, token: str) -> str:
    _enter_study(cwd, probe, token)
    return socket.gethostname()


def _enter_study(cwd: str, probe: str, token: str) -> None:
    """Work where the driver works; refuse to run on a node that does not see the study's files."""
    if os.path.isdir(cwd):
        os.chdir(cwd)  # relative paths of the study resolve as in the driver
    try:
        seen = Path(probe).read_text()
    except OSError:
        seen = None
    if seen != token:
        study = Path(cwd, probe).parent.parent
        raise ExecutorError(f"Ray node {socket.gethostname()} cannot see the study directory {str(study)!r}: "
                            "put --out on storage that every node mounts at the same path (NFS, a cluster file system)")


# ----------------------------------------------------------------------------- the cluster


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ExecutorError("--executor ray needs Ray: pip install 'tfrewind[ray]'") from None
    return ray


def _connect(ray: Any, address: str | None, worker_output: bool) -> bool:
    """Join ``address`` or start Ray here; True if this call started the connection (and ends it)."""
    if ray.is_initialized():
        return False
    if address and address != "auto":
        _check_reachable(address)
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=worker_output)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        where = f"cannot join the Ray cluster at {address!r}" if address else "cannot start Ray on this machine"
        raise ExecutorError(f"--executor ray: {where} ({reason})") from None
    return True


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Refuse an address nothing listens on: Ray itself retries such an address for many minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except ValueError:
        raise ExecutorError(f"--address {address!r}: give HOST:PORT, ray://HOST:PORT or auto") from None
    except OSError as exc:
        raise ExecutorError(f"--address {address!r}: no Ray cluster answers there ({exc.strerror or exc}); "
                            "start one with `ray start --head`, or check the host and port") from None


def _write_probe(out: Path) -> Path:
    path = out / CLAIMS_DIR / f"probe-{uuid.uuid4().hex}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(uuid.uuid4().hex)
    return path


def check_nodes_see_study(ray: Any, probe: Path) -> list[str]:
    """One tiny task pinned to each live node reads the probe; the first node that cannot is an error."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(_probe_task)
    token = probe.read_text() if probe.exists() else ""
    refs = [task.options(num_cpus=0, name="tfrewind-probe",
                         scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
            .remote(os.getcwd(), str(probe), token) for node in ray.nodes() if node["Alive"]]
    try:
        return ray.get(refs)
    except ray.exceptions.RayError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, ExecutorError):
            raise cause from None
        first = (str(cause or exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExecutorError(f"a Ray node cannot run tfrewind ({first}); install this tfrewind version on "
                            "every node") from None


def cluster_capacity(ray: Any, executor: ExecutorConfig) -> int:
    """How many cells the live nodes fit at once; refuses a cell that no node can hold."""
    total = 0
    for node in ray.nodes():
        if not node["Alive"]:
            continue
        resources = node["Resources"]
        fits = int(resources.get("CPU", 0) // executor.cpus_per_cell)
        if executor.gpus_per_cell:
            fits = min(fits, int(resources.get("GPU", 0) // executor.gpus_per_cell))
        total += fits
    if total < 1:
        have = ray.cluster_resources()
        raise ExecutorError(f"no Ray node can hold a cell of {executor.cpus_per_cell:g} CPU(s) and "
                            f"{executor.gpus_per_cell:g} GPU(s) (the cluster has {have.get('CPU', 0):g} CPUs, "
                            f"{have.get('GPU', 0):g} GPUs); lower --cpus-per-cell/--gpus-per-cell, or give "
                            "--max-parallel to wait for nodes an autoscaler adds")
    return total


__all__ = ["TASK_RETRIES", "RayExecutor", "check_nodes_see_study", "cluster_capacity"]
