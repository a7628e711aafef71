"""Cell claims (tfrewind.compare_claims): one holder at a time, dead and abandoned holders taken over,
and processes racing for the same cells — stale claims included — never both winning one.

No TensorFlow here; the end-to-end test with two `tfrewind compare` processes is in test_compare_ray.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tfrewind.compare_claims import Claims, Owner

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}

# A process that claims each name it is given once the start file exists and prints what it won;
# then, holding its claims, it SIGKILLs itself ("kill"), exits ("exit": the claims are stale from
# then on), or exits once it reads a line on stdin ("hold").
RACER = """
import os, signal, sys
from pathlib import Path
from tfrewind.compare_claims import Claims
out, start, action, *names = sys.argv[1:]
while not Path(start).exists():
    pass
claims = Claims(out)
print(" ".join(name for name in names if claims.take(name)), flush=True)
if action == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
if action == "hold":
    sys.stdin.readline()
os._exit(0)
"""


def racer(out: Path, start: Path, action: str, names: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", RACER, str(out), str(start), action, *names], env=ENV,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_a_claim_is_held_by_one_process_until_released(tmp_path):
    mine = Claims(tmp_path)
    other = Claims(tmp_path, owner=Owner("other-host", "other-boot", 1, "1"))
    assert mine.take("cell-a")
    assert not other.take("cell-a")
    assert other.holder("cell-a") == str(Owner.me())
    mine.release("cell-a")
    assert other.take("cell-a") and not mine.take("cell-a")
    assert mine.holder("cell-a") == "other-host:1"
    mine.close()
    other.close()


def test_a_sigkilled_holder_leaves_its_cells_to_the_next_process(tmp_path):
    start = tmp_path / "go"
    start.touch()
    child = racer(tmp_path, start, "kill", ["cell-a", "cell-b"])
    assert child.stdout.readline().split() == ["cell-a", "cell-b"]
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead but not reaped: a zombie still has its pid
    claims = Claims(tmp_path)
    assert claims.take("cell-a") and claims.take("cell-b")
    assert child.wait() == -signal.SIGKILL
    claims.close()


def test_another_machines_claim_is_taken_over_only_after_its_lease(tmp_path):
    remote = Claims(tmp_path, owner=Owner("other-host", "other-boot", os.getpid(), ""))
    assert remote.take("cell-a")
    (claim,) = (tmp_path / "claims" / "cell-a").glob("*.json")
    mine = Claims(tmp_path, lease=600)
    assert not mine.take("cell-a")  # its heartbeat is recent
    old = time.time() - 601
    os.utime(claim, (old, old))  # no heartbeat for longer than the lease: that machine is gone
    assert mine.take("cell-a")
    remote.close()
    mine.close()


def test_racing_processes_never_win_the_same_cell(tmp_path):
    names = [f"cell-{i}" for i in range(40)]
    start = tmp_path / "go"
    # half the cells carry a stale claim (its holder exited without releasing): the racers break those too
    stale = racer(tmp_path, start, "exit", names[::2])
    start.touch()
    assert stale.communicate()[0].split() == names[::2]
    start.unlink()
    racers = [racer(tmp_path, start, "hold", names) for _ in range(4)]
    start.touch()  # all four claim at once, and hold what they won until every one has answered
    won = [r.stdout.readline().split() for r in racers]
    for r in racers:
        r.communicate("\n")
    assert sorted(sum(won, [])) == sorted(names)  # every cell won by exactly one racer
