"""Run the tfrewind CLI in-process, as a user's shell would, and collect what they would see."""

from __future__ import annotations

from tfrewind.cli import main


def run_cli(args, capsys=None):
    """Return (exit status, stdout, stderr); the streams are empty when ``capsys`` is not given."""
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code or 0
    if capsys is None:
        return code, "", ""
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_ok(args) -> None:
    """Run a command that must succeed."""
    code, _, _ = run_cli(args)
    assert code == 0, f"exit status {code} for {args}"


DENSE_RUN_ARGS = ["train", "--epochs", "4", "--set", "train.milestones=2,3", "--prune", "none", "--quiet"]
"""A dense run on digits: 4 epochs, lr ×0.1 after epochs 2 and 3, a verified TFLite export."""
