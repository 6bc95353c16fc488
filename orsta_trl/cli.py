"""``orsta-trl``: thin subcommands over the library.

orsta-trl train RECIPE [--key value ...]     train with GRPO (same as orsta_trl/train.py)
orsta-trl make-tiny DIR [--text]             build a tiny random-weight Qwen2.5-VL (or Qwen2 text LM)
orsta-trl synth OUT --n N --seed S [--tasks detection ocr ...]
orsta-trl check-data PATH [PATH ...]         per-source summary, or every invalid record
orsta-trl check-recipe RECIPE [...]          validate recipes without loading weights
orsta-trl score RECORDS COMPLETIONS -o OUT [--progress P] [--recipe R]
orsta-trl eval CHECKPOINT DATA [DATA ...] [-o OUT.json] [--max-new-tokens N] [--recipe R]
orsta-trl report RUN_DIR [-o OUT_DIR]        PNG plots per source and a Markdown summary
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from collections.abc import Callable

from orsta_trl.data.records import DatasetError
from orsta_trl.errors import OrstaError, RecipeError


def exit_on_error(run: Callable[[], int | None]) -> int:
    """Run a command; a library error (bad recipe, bad data, a verifier not ready) becomes one message on
    stderr and exit status 1. The only place where errors turn into exit codes."""
    try:
        return run() or 0
    except DatasetError as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{len(exc.errors)} invalid record(s)", file=sys.stderr)
        return 1
    except OrstaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the environment, not our data: a permission, a full disk
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: the library has stopped its workers; a shell's usual 128 + SIGINT
        print("interrupted (Ctrl-C): no half-written checkpoint was kept", file=sys.stderr)
        return 130


def _make_tiny(args) -> None:
    from orsta_trl.models.tiny import make_tiny_lm, make_tiny_vl

    build = make_tiny_lm if args.text else make_tiny_vl
    path = build(args.dir, seed=args.seed)
    print(f"wrote {'text LM' if args.text else 'Qwen2.5-VL'} to {path}")


def _synth(args) -> None:
    from orsta_trl.data.synth import synth

    path = synth(args.out, n=args.n, seed=args.seed, tasks=args.tasks)
    print(f"wrote {path}")


def _check_data(args) -> int:
    from orsta_trl.data.records import load_records

    records = load_records(args.paths)
    if not records:
        print(f"error: no records in {', '.join(args.paths)}", file=sys.stderr)
        return 1
    by_source = defaultdict(list)
    for record in records:
        by_source[record.data_source].append(record)
    header = f"{'data_source':<24} {'records':>8} {'images':>7}  verifiers"
    print(header)
    print("-" * len(header))
    for source in sorted(by_source):
        group = by_source[source]
        verifiers = Counter(r.reward.verifier.name for r in group)
        print(
            f"{source:<24} {len(group):>8} {sum(len(r.images) for r in group):>7}  "
            + ", ".join(f"{k}={v}" for k, v in sorted(verifiers.items()))
        )
    print(f"{len(records)} valid record(s) in {len(by_source)} source(s)")
    return 0


def _check_recipe(args) -> int:
    from orsta_trl.recipe import load_recipe

    failed = 0
    for path in args.recipes:
        try:
            recipe = load_recipe(path, check=True)
        except RecipeError as exc:
            print(f"FAIL {exc}", file=sys.stderr)
            failed += 1
            continue
        print(
            f"ok   {path}: model {recipe.model.model_name_or_path}, {len(recipe.orsta.train_files)} train file(s)"
        )
    return 1 if failed else 0


def _score(args) -> int:
    from orsta_trl.score import score_files, summary_table

    rows = score_files(
        args.records, args.completions, args.output, progress=args.progress, recipe_path=args.recipe
    )
    print(summary_table(rows), file=sys.stderr)
    print(f"wrote {len(rows)} line(s) to {args.output}", file=sys.stderr)
    return 0


def _eval(args) -> int:
    from orsta_trl.evaluation import eval_table, evaluate_checkpoint

    report = evaluate_checkpoint(
        args.checkpoint,
        args.data,
        output=args.output,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        iou_threshold=args.iou_threshold,
        recipe_path=args.recipe,
    )
    print(eval_table(report))
    if args.output:
        print(f"wrote {args.output}")
    return 0


def _report(args) -> int:
    from orsta_trl.monitor.report import report_main

    return report_main(args.run_dir, args.output)


def _threshold(value: str):
    return value if value == "average" else float(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orsta-trl", description="V-Triune-style GRPO on TRL.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train with GRPO from a recipe", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)

    p = sub.add_parser("make-tiny", help="build a tiny random-weight model offline")
    p.add_argument("dir")
    p.add_argument("--text", action="store_true", help="a Qwen2 text-only causal LM instead of Qwen2.5-VL")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_make_tiny)

    p = sub.add_parser("synth", help="write synthetic V-Triune records and images")
    p.add_argument("out")
    p.add_argument("--n", type=int, default=32, help="records per task")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tasks", nargs="+", default=None)
    p.set_defaults(func=_synth)

    p = sub.add_parser("check-data", help="validate dataset files and summarise them per source")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=_check_data)

    p = sub.add_parser("check-recipe", help="validate recipes without loading weights")
    p.add_argument("recipes", nargs="+")
    p.set_defaults(func=_check_recipe)

    p = sub.add_parser("score", help="score completions against records with the verifiers")
    p.add_argument("records")
    p.add_argument("completions")
    p.add_argument("-o", "--output", required=True)
    p.add_argument(
        "--progress", type=float, default=1.0, help="training progress for dynamic thresholds (0..1)"
    )
    p.add_argument("--recipe", default=None, help="take pixel bounds and the IoU schedule from this recipe")
    p.set_defaults(func=_score)

    p = sub.add_parser("eval", help="greedy evaluation of a saved model (full or LoRA adapter) on datasets")
    p.add_argument("checkpoint")
    p.add_argument("data", nargs="+")
    p.add_argument("-o", "--output", default=None, help="write the JSON report here")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--iou-threshold", type=_threshold, default="average", help="a number or 'average'")
    p.add_argument(
        "--recipe",
        default=None,
        help="take pixel bounds (else the checkpoint's processor config) and rewrite_embedder from here",
    )
    p.set_defaults(func=_eval)

    p = sub.add_parser("report", help="plots and a summary table from a run's TensorBoard logs")
    p.add_argument("run_dir")
    p.add_argument("-o", "--output", default=None, help="output folder (default RUN_DIR/report)")
    p.set_defaults(func=_report)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        from orsta_trl.train import main as train_main

        raise SystemExit(train_main(argv[1:]))
    args = build_parser().parse_args(argv)
    raise SystemExit(exit_on_error(lambda: args.func(args)))


if __name__ == "__main__":
    main()
