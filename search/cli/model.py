"""The model: train, eval-model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from indexer.train import RECIPES, TrainConfig

from .common import (
    FOLDER,
    INPUT_FILE,
    OUTPUT_FILE,
    Target,
    emit,
    home_command,
    json_flag,
    options,
    quiet_flag,
)


def _per_recipe(key: str) -> str:
    """A training option's value in each recipe, for --help (read from RECIPES)."""
    return "[" + ", ".join(f"{name} {values[key]}" for name, values in RECIPES.items()) + "]"


# What to train from and where the model goes.
_TRAIN_OPTIONS = options(
    click.option(
        "--data",
        type=INPUT_FILE,
        help="Training CSV with text and label (0/1) columns. Default: indexer/data/train.csv.",
    ),
    click.option(
        "--output",
        type=FOLDER,
        help="Where to save the model. Default: HOME/models/default.",
    ),
    click.option(
        "--base",
        default="base",
        show_default=True,
        help="Model to fine-tune: a folder, or `base` (all-MiniLM-L6-v2).",
    ),
    click.option(
        "--recipe",
        type=click.Choice(tuple(RECIPES)),
        default=TrainConfig.recipe,
        show_default=True,
        help="foodvec: a search model that also knows health (Hangul jamo added to the "
        "vocabulary; ranking loss on query/description pairs; triplet loss on cosine "
        "distance; English names kept). card: the seed card exactly (BatchHardTripletLoss, "
        "margin 5 on Euclidean distance). The options below override either.",
    ),
)

# The training settings that override the recipe's (each None unless given).
_TUNING_OPTIONS = options(
    click.option("--epochs", type=click.IntRange(1, 1000), help=f"Epochs {_per_recipe('epochs')}."),
    click.option(
        "--batch-size",
        type=click.IntRange(2, 4096),
        help=f"Batch size {_per_recipe('batch_size')}.",
    ),
    click.option(
        "--lr",
        type=click.FloatRange(0, 1, min_open=True),
        help=f"Learning rate {_per_recipe('lr')}.",
    ),
    click.option("--seed", type=int, help=f"Random seed [default: {TrainConfig.seed}]."),
    click.option(
        "--max-seq-length",
        type=click.IntRange(8, 512),
        help=f"Longest input in tokens [default: {TrainConfig.max_seq_length}].",
    ),
    click.option(
        "--warmup-ratio",
        type=click.FloatRange(0, 1),
        help=f"Share of steps warming up [default: {TrainConfig.warmup_ratio}].",
    ),
    click.option(
        "--scheduler",
        help="Learning-rate schedule (transformers' lr_scheduler_type) "
        f"[default: {TrainConfig.scheduler}].",
    ),
    click.option(
        "--margin",
        type=float,
        help=f"BatchHardTripletLoss margin {_per_recipe('margin')} (cosine distance for "
        "foodvec, Euclidean for card).",
    ),
)


@click.command()
@_TRAIN_OPTIONS
@_TUNING_OPTIONS
@click.option("--no-eval", is_flag=True, help="Skip the held-out evaluation in the model card.")
@click.option(
    "--no-cache",
    is_flag=True,
    help="Train even when the per-user cache holds this model (FOODVEC_CACHE/models; used "
    "only for the default output and recipe, with no other training option).",
)
@quiet_flag()
@json_flag("Print the result as JSON.")
@home_command
def train(data, output, base, recipe, no_eval, no_cache, quiet, as_json, at: Target, **tuning):
    """Fine-tune all-MiniLM-L6-v2 into the default model (or the seed card's).

    The default recipe (foodvec) trains a search model that also separates healthy from
    unhealthy profiles; --recipe card reproduces the seed model card. The result is a
    sentence-transformers folder with a model card; without --output it becomes the
    default model of this home. Without training options, the model is copied from the
    per-user cache when an earlier training of the same recipe, settings, data, base model
    and training code put it there (--no-cache trains all the same).
    """
    from indexer import model_cache
    from indexer.errors import require_training_extra
    from indexer.settings import DATA_DIR, Layout

    require_training_extra("foodvec train")
    cached = not no_cache and not no_eval and output is None and data is None
    cached = cached and base == "base" and recipe == TrainConfig.recipe
    cached = cached and all(v is None for v in tuning.values())

    out = output or Layout(at.home or at.settings.home).default_model
    cfg = TrainConfig.for_recipe(
        recipe, data=data or DATA_DIR / "train.csv", output=out, base=base, **tuning
    )
    entry = model_cache.entry_for(cfg) if cached else None
    if entry is not None:
        record, why = model_cache.fetch(entry, out)
        if record is not None:
            info, figures = record.get("info") or {}, record.get("evaluation")
            if as_json:
                emit({"output": str(out), **info, "evaluation": figures, "cache": str(entry.path)})
                return
            click.echo(
                f"copied the trained {recipe} model from the cache {entry.path} -> {out} "
                "(no training; --no-cache trains anew)"
            )
            return
        if why and not as_json:
            click.echo(f"the cached model {entry.path} is damaged ({why}): training", err=True)
    _train_anew(cfg, entry, no_eval=no_eval, quiet=quiet, as_json=as_json)


def _train_anew(cfg: TrainConfig, entry: Any, no_eval: bool, quiet: bool, as_json: bool) -> None:
    """Train, write the model card, fill the cache (``entry``, when the cache applies)
    and report."""
    from indexer import model_cache
    from indexer.settings import DATA_DIR
    from indexer.train import evaluate_pair, write_model_card
    from indexer.train import train as run_train

    out, base = cfg.output, cfg.base
    talk = not quiet and not as_json
    if talk:
        click.echo(f"training the {cfg.recipe} recipe -> {out}", err=True)
    info = run_train(cfg, progress=not quiet)
    figures = None
    if not no_eval and (DATA_DIR / "heldout.csv").exists():
        if talk:
            click.echo("evaluating the trained model against the base model ...", err=True)
        figures = evaluate_pair(out, base=base)
    write_model_card(out, info, figures or {"base": {}, "tuned": {}})
    stored = None
    if entry is not None:
        try:
            stored = model_cache.store(entry, out, {"info": info, "evaluation": figures})
        except OSError as exc:  # the model is trained all the same
            click.echo(f"could not cache the model in {entry.path}: {exc}", err=True)
    if as_json:
        cache = str(stored) if stored else None
        emit({"output": str(out), **info, "evaluation": figures, "cache": cache})
        return
    click.echo(
        f"saved {out} ({info['steps']} steps, {info['seconds']:.1f} s, "
        f"final loss {info['train_loss']})"
    )
    if stored is not None:
        click.echo(f"cached it for other homes: {stored}")
    if figures:
        _print_figures(figures)


def _print_figures(figures: dict[str, dict[str, float]]) -> None:
    click.echo(f"{'figure':34s} {'base':>8s} {'tuned':>8s}")
    for name in figures["tuned"]:
        click.echo(f"{name:34s} {figures['base'][name]:8.4g} {figures['tuned'][name]:8.4g}")


class Stages:
    """Progress of a command made of a few long stages, on stderr: ``[1/2] label ...``
    when a stage starts and ``[1/2] label: done in 41.2 s`` (or ``failed after``) when
    it ends; on a terminal one line per stage whose seconds count up while it runs."""

    TICK_SECONDS = 1.0

    def __init__(self, total: int, quiet: bool = False):
        self.total = total
        self.quiet = quiet
        self.n = 0

    def stage(self, label: str):
        import contextlib
        import threading
        import time

        self.n += 1
        head = f"[{self.n}/{self.total}] {label}"

        @contextlib.contextmanager
        def running():
            if self.quiet:
                yield
                return
            t0 = time.monotonic()
            tty = sys.stderr.isatty()
            stop = threading.Event()
            ticker = None
            if tty:

                def tick() -> None:
                    while not stop.wait(self.TICK_SECONDS):
                        secs = time.monotonic() - t0
                        click.echo(f"\r{head} ... {secs:.0f} s", err=True, nl=False)

                click.echo(f"{head} ...", err=True, nl=False)
                ticker = threading.Thread(target=tick, name="foodvec-stage", daemon=True)
                ticker.start()
            else:
                click.echo(f"{head} ...", err=True)
            outcome = "failed after"
            try:
                yield
                outcome = "done in"
            finally:
                stop.set()
                if ticker is not None:
                    ticker.join()
                secs = time.monotonic() - t0
                start = "\r" if tty else ""
                click.echo(f"{start}{head}: {outcome} {secs:.1f} s", err=True)

        return running()


@click.command("eval-model")
@click.option("--base", default="base", show_default=True, help="The model to compare with.")
@click.option(
    "--heldout",
    type=INPUT_FILE,
    help="Held-out CSV (text, label) for --plot. Default: indexer/data/heldout.csv.",
)
@click.option(
    "--plot",
    type=OUTPUT_FILE,
    help="Draw the held-out phrases in 2-D (PCA), base and tuned, to this PNG.",
)
@json_flag("Print the figures as JSON.")
@quiet_flag("No progress lines (--json has none either).")
@home_command
def eval_model(base, heldout: Path | None, plot, as_json, quiet, at: Target) -> None:
    """Compare a model with the base model on foodvec's jobs.

    Korean lookup (dense only, the benchmark's test half): mean nDCG@10, names found
    first, needs said in other words. Health: held-out label margin and 1-NN accuracy.
    English food retrieval nDCG@10. [UNK] rate on Hangul words. Mining: the model's
    threshold, the share of sample-corpus pairs above it, and the average precision of
    planted near-duplicates in the mined list. Each stage (about 45 s a model on 2
    cores) is a line on stderr.
    """
    from indexer.quality import model_report
    from indexer.settings import DATA_DIR

    tuned = at.model
    if tuned is None:
        with at.open() as idx:
            tuned = str(idx.default_model_path)
    heldout = heldout or DATA_DIR / "heldout.csv"
    stages = Stages(3 if plot else 2, quiet=quiet or as_json)
    what = "lookup, health, English, [UNK] and mining figures"
    with stages.stage(f"base model ({base}): {what}"):
        figures = {"base": model_report(base)}
    with stages.stage(f"model ({tuned}): {what}"):
        figures["tuned"] = model_report(tuned)
    if plot:
        from indexer.plot import plot_pair

        with stages.stage(f"plot of the held-out phrases -> {plot}"):
            plot_pair(tuned, base, heldout, plot)
    if as_json:
        emit({"model": tuned, "base": base, **figures, "plot": str(plot) if plot else None})
        return
    click.echo(f"model: {tuned}")
    _print_figures(figures)
    if plot:
        click.echo(f"plot: {plot}")
