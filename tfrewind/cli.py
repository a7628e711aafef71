"""The ``tfrewind`` command line: a thin Click shell over the library.

Each command parses flags into config overrides and makes one call into the public API. Bad
input (unknown names, impossible values, missing files) exits with status 2 and a one-line
message; ``--debug`` shows the traceback instead. TensorFlow is imported only when a command
runs, so ``--help`` is instant. A flag that sets a config field is generated from the field
(:mod:`tfrewind.cli_options`): this module only says which fields a command offers, under which
flag; names to choose from come from the registries of :mod:`tfrewind.choices`.
"""

from __future__ import annotations

import sys

import click

from ._version import __version__
from ._console import cli_console
from .choices import ORIGINAL_SCHEDULES, RETRAIN_SCHEDULES
from .cli_options import (DynamicHelpOption, RegistryChoice, build_config, config_flags, config_option, config_options,
                          executor_options, flag_names, overrides, prune_file_options,
                          prune_options, train_options)
from .compare_config import CompareConfig
from .errors import TfrewindError

EXIT_BAD_INPUT = 2
EXIT_INTERNAL_ERROR = 1


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tfrewind")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors, and everything TensorFlow prints "
                                            "(start-up lines, warnings), which is hidden otherwise.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Prune tf_keras models and retrain them with LR rewinding, 1-cycle and friends (Le & Hua, ICLR 2021)."""
    ctx.obj = {"debug": debug}


@cli.command()
@config_options
@prune_options
@train_options
@click.option("--quiet", is_flag=True, help="No per-epoch progress lines.")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out RUN_DIR from its last completed "
                                             "epoch, with its saved config (flags given must agree with it).")
def train(config_path, sets, quiet: bool, resume: bool, **flags) -> None:
    """Train, then prune, retrain and evaluate as configured — the whole loop.

    With no options it trains the small CNN on scikit-learn's digits, offline, and writes
    TensorBoard logs, the resolved config, checkpoints and metrics.json into a run directory.
    With --prune METHOD it then prunes to --sparsity and retrains with --schedule for --budget.
    """
    from .pipeline import train as run_train

    ctx = click.get_current_context()
    given = config_flags(ctx)
    if given.get("prune.method") == "none":
        unused = [flag for key, flag in flag_names(ctx).items()
                  if key.startswith(("prune.", "retrain.")) and key != "prune.method" and key in given]
        if unused:
            raise click.UsageError(f"{', '.join(unused)} configure pruning and retraining, which --prune none skips; "
                                   "drop them or choose a pruning method")
    if resume:
        config_path = _resume_config(given.get("out"), config_path)
    config = build_config(config_path, sets)
    result = run_train(config, verbose=0 if quiet else 2, resume=resume)
    _print_summary(result)


def _resume_config(out: str | None, config_path: str | None) -> str | None:
    """``--resume``: the run's own config.yaml is the base (unless --config is given)."""
    from pathlib import Path

    from .rundir import CONFIG_FILE, RunDir

    if not out:
        raise click.UsageError("--resume needs --out RUN_DIR: the run directory to continue")
    run = RunDir(out)
    if not (run.path / CONFIG_FILE).is_file():
        raise click.UsageError(f"--resume: {out!r} is not a tfrewind run directory (no {CONFIG_FILE}); "
                               "drop --resume to start a new run there")
    run.check_version()
    return config_path or str(Path(out) / CONFIG_FILE)


@cli.command()
@click.option("--schedule", "names", default="lr_rewind", show_default=True, cls=DynamicHelpOption,
              help_text=lambda: f"Schedule to preview ({', '.join(RETRAIN_SCHEDULES)}); for PNG a comma list or 'all'.")
@click.option("--budget", default="72", show_default=True, help="Retraining epochs, or a share such as 45%.")
@click.option("--original-epochs", default=160, show_default=True, type=int, help="Original training epochs T.")
@click.option("--original-lr", default=0.1, show_default=True, type=float, help="Original peak learning rate.")
@click.option("--original-schedule", default="step", show_default=True,
              type=RegistryChoice(ORIGINAL_SCHEDULES), help="Shape of the original schedule.")
@click.option("--milestones", default="80,120", show_default=True, help="Original step-decay epochs (×0.1 each).")
@click.option("--steps-per-epoch", default=782, show_default=True, type=int,
              help="Optimizer steps per epoch (782 = CIFAR-10 at batch 64).")
@click.option("--per-step", is_flag=True, help="One CSV row per step instead of per epoch.")
@click.option("--format", "fmt", default="csv", show_default=True, type=click.Choice(["csv", "png"]))
@click.option("--out", default=None, help="PNG path. Default: schedule.png")
def schedule(names, budget, original_epochs, original_lr, original_schedule, milestones, steps_per_epoch,
             per_step, fmt, out) -> None:
    """Preview a retraining schedule: CSV (epoch,lr,momentum) to stdout, or a PNG like the paper's Figure 1."""
    from .config import parse_budget
    from .config.parse import _coerce
    from .preview import describe_original, preview_schedule

    chosen = RETRAIN_SCHEDULES.names() if names == "all" else [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in RETRAIN_SCHEDULES]
    if unknown:
        raise click.BadParameter(f"unknown schedule {unknown[0]!r}; choose from {', '.join(RETRAIN_SCHEDULES)}",
                                 param_hint="--schedule")
    epochs = parse_budget(budget, original_epochs)
    original = describe_original(original_epochs, original_lr, _coerce(milestones, list[int], "--milestones"),
                                 steps_per_epoch, schedule=original_schedule)
    if fmt == "csv" and len(chosen) != 1:
        raise click.BadParameter("CSV previews one schedule at a time", param_hint="--schedule")
    result = preview_schedule(chosen, epochs, original, fmt=fmt, out=out, per_step=per_step)
    if fmt == "png":
        click.echo(f"wrote {result}")
    else:
        click.echo(result, nl=False)


@cli.command("prune")
@click.argument("model_path", type=click.Path())
@prune_options
@prune_file_options
def prune_command(model_path, config_path, out, **flags) -> None:
    """Prune a saved tf_keras or Keras 3 model once and save it with its per-layer report (MODEL_pruned.json).

    \b
    Channel pruning (METHOD = CRITERION_filter) makes any functional or Sequential
    model smaller, nested models included: a dependency graph groups the channels
    that go together (residual Adds, Concatenate offsets, depthwise, grouped convs,
    SE blocks, Flatten -> Dense); the rebuild is exact (rebuild_max_abs_diff).
    \b
    Criteria: l1 (Li et al.), l2, random (seeded), fpgm, bn_scale (|BN gamma|);
    taylor and hrank score on a few batches of --dataset.
    Targets: --sparsity R (every group loses R of its channels), --ratios (one per
    group, in model order), --preset, or --macs S (at most S of the dense MACs;
    --allocation uniform: one ratio for all groups, global: rank across groups);
    --round-to 8: channel counts multiples of 8; --ignored-layers a,b: kept whole.
    \b
    Unprunable: channels reaching the model input or output, an unknown layer (custom,
    Lambda), a shared layer, or one that mixes channels (LayerNormalization,
    softmax). The report names each blocked group's layer.
    """
    from .commands import prune_file

    config = build_config(config_path, ())
    dataset_given = "data.name" in config_flags(click.get_current_context()) or config_path is not None
    path, report = prune_file(model_path, config, out, dataset_given=dataset_given)
    click.echo(f"pruned model: {path}")
    for key in ("sparsity", "params_before", "params_after", "flops_before", "flops_after", "macs_ratio",
                "rebuild_max_abs_diff"):
        if key in report:
            click.echo(f"  {key:<14} {report[key]}")


@cli.command()
@click.argument("model_path", type=click.Path())
@config_options
@config_option("--schedule", "retrain.schedule", "retrain_schedule", choice=True)
@config_option("--budget", "retrain.budget")
@config_option("--pretrained", "train.pretrained", type=click.Path())
@click.option("--quiet", is_flag=True, help="No per-epoch progress lines.")
def retrain(model_path, config_path, sets, quiet, **flags) -> None:
    """Retrain an already pruned model with a schedule; the original schedule comes from --pretrained
    RUN_DIR or from --epochs/--lr/--set train.milestones=... ."""
    from .commands import retrain_model

    config = build_config(config_path, sets)
    _print_summary(retrain_model(model_path, config, verbose=0 if quiet else 2))


@cli.command("export")
@click.argument("source", type=click.Path())
@config_option("--format", "export.format", "fmt", choice=True, exclude=("none",))
@config_option("--quantize", "export.quantize", choice=True)
@config_option("--sparse", "export.sparse")
@click.option("--out", help="Output directory. Default: RUN_DIR/export, or MODEL_export/ beside a model file.")
@config_option("--dataset", "data.name", note="Used for verification, calibration and accuracy when SOURCE is a "
                                             "model file (a run directory brings its own); its images must fit "
                                             "the model's input; when the default's don't, generated inputs "
                                             "are used (no accuracy, no int8).")
@config_option("--data-dir", "data.data_dir")
@click.option("--xnnpack-sparse", is_flag=True, help="Check XNNPack's sparse-inference rules; name the layer that breaks them.")
@click.option("--allow-select-tf-ops", is_flag=True, help="Allow TensorFlow (Select TF) ops the device runtime may lack.")
def export_command(source, fmt, quantize, sparse, out, dataset, data_dir, xnnpack_sparse, allow_select_tf_ops) -> None:
    """Export RUN_DIR's final model (or a .keras/.h5 MODEL) to TFLite/Keras/SavedModel, verified with LiteRT."""
    from .config import load_config
    from .export import format_table
    from .commands import export_path

    config = load_config(None, overrides({"export.format": fmt, "export.quantize": quantize, "export.sparse": sparse,
                                           "data.name": dataset, "data.data_dir": data_dir}, ()))
    report = export_path(source, config, out, xnnpack_sparse=xnnpack_sparse, allow_select_tf_ops=allow_select_tf_ops,
                         dataset_given=dataset is not None)
    click.echo(format_table(report))


@cli.command("compare")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True,
              help="Compare YAML (e.g. configs/compare/digits.yaml): run-config sections plus grid: and out:.")
@config_option("--out", "out", root=CompareConfig, note="Overrides out: in the YAML.")
@config_option("--seeds", "grid.seeds", root=CompareConfig, note="Overrides grid.seeds.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override any field, e.g. --set train.epochs=20, --set grid.budgets=25%,50%, "
                   "--set grid.methods=global_magnitude:0.9,random:0.9 (repeatable).")
@click.option("--dry-run", is_flag=True, help="Validate the config, list the cells (done or pending) and estimate "
                                             "the time left from a few steps measured on this device; train nothing.")
@click.option("--measure-steps", type=click.IntRange(min=0), default=5, show_default=True,
              help="--dry-run: training steps timed for the estimate (0: no estimate).")
@click.option("--verbose", is_flag=True, help="Keras per-epoch lines for every run (default: quiet, a bar over cells).")
@executor_options
def compare_command(config_path, sets, dry_run, measure_steps, verbose, **flags) -> None:
    """One original training, then methods × schedules × budgets × seeds, one run directory per cell;
    finished cells are skipped on a re-run. Writes results.csv, results.md and PNG plots into --out."""
    from .compare import load_compare_config, run_compare

    config = load_compare_config(config_path, overrides(config_flags(click.get_current_context()), sets))
    if dry_run:
        from .compare_estimate import plan_compare

        click.echo("\n".join(plan_compare(config, measure_steps).lines()))
        return
    result = run_compare(config, verbose=2 if verbose else 0)
    failed = [name for name, status in result.statuses.items() if status == "failed"]
    from .compare_report import headline_table

    click.echo(headline_table(config.out_dir))
    for path in result.files:
        click.echo(f"wrote {path}")
    if failed:
        click.echo(f"{len(failed)} cell(s) failed (see results.md): {', '.join(failed)}", err=True)


@cli.command("report")
@click.argument("out", type=click.Path())
def report_command(out) -> None:
    """Rebuild results.csv, results.md and the plots of a compare directory from its run directories."""
    from .compare import report

    _, files = report(out)
    for path in files:
        click.echo(f"wrote {path}")


def _print_summary(result) -> None:
    click.echo(f"run directory: {result.run_dir}")
    for stage, metrics in result.stages.items():
        accuracy = metrics.get("test_accuracy")
        shown = "n/a" if accuracy is None else f"{accuracy:.4f}"
        click.echo(f"  {stage:<12} test accuracy {shown}")
    click.echo(f"TensorBoard: tensorboard --logdir {result.run_dir / 'tensorboard'}")


def _one_line(message: str) -> str:
    """Click's messages (suggestions, choices) and wrapped errors can span lines: keep one."""
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def _debug_requested(args: list[str]) -> bool:
    """``tfrewind --debug COMMAND ...``: read before Click runs, because TensorFlow's start-up lines
    are hidden (or not) when a command first imports it. Only the group's options, before the command."""
    for arg in args:
        if arg == "--debug":
            return True
        if not arg.startswith("-"):
            return False
    return False


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors with exit status 2 for bad input, tracebacks with --debug.

    Without --debug the console shows progress, results and errors only: TensorFlow's start-up
    lines and the warnings of its loggers are hidden for the command (see :mod:`tfrewind._console`).
    """
    args = sys.argv[1:] if argv is None else argv
    debug = _debug_requested(args)
    with cli_console(debug):
        _run(args, debug)


def _run(args: list[str], debug: bool) -> None:
    try:
        cli.main(args=args, prog_name="tfrewind", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("tfrewind: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        if debug:
            raise
        hint = f" (see: tfrewind {exc.ctx.info_name} --help)" if getattr(exc, "ctx", None) else ""
        click.echo(f"tfrewind: error: {_one_line(exc.format_message())}{hint}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except TfrewindError as exc:
        if debug:
            raise
        click.echo(f"tfrewind: error: {_one_line(str(exc))}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("tfrewind: interrupted (the same command with the same --out resumes the run)", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - no command ends in a traceback without --debug
        if debug:
            raise
        click.echo(f"tfrewind: internal error: {type(exc).__name__}: {_one_line(str(exc))[:300]} "
                   "(re-run with --debug for the traceback, and please report it)", err=True)
        sys.exit(EXIT_INTERNAL_ERROR)


if __name__ == "__main__":
    main()
