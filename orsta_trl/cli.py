"""``orsta-trl``: thin subcommands over the library.

orsta-trl train RECIPE [--key value ...]     train with GRPO (same as orsta_trl/train.py)
orsta-trl make-tiny DIR [--text]             build a tiny random-weight Qwen2.5-VL (or Qwen2 text LM)
orsta-trl synth OUT --n N --seed S [--tasks detection ocr ...]
orsta-trl check-data PATH [PATH ...] [--skip-invalid] [--recipe R]   per-source summary, or every invalid record
orsta-trl check-recipe RECIPE [...]          validate recipes without loading weights
orsta-trl score RECORDS COMPLETIONS -o OUT [--progress P] [--recipe R]
orsta-trl eval CHECKPOINT DATA [DATA ...] [-o OUT.json] [--max-new-tokens N] [--recipe R]
orsta-trl report RUN_DIR [-o OUT_DIR]        PNG plots per source and a Markdown summary
orsta-trl view RUN_DIR [-o OUT.html] [--source S ...] [--steps A:B]   one offline HTML page of the rollouts
orsta-trl convert KIND SRC OUT [...]         vtriune | verl | coco | refcoco | qa files -> our records
orsta-trl filter rules IN OUT [--config C] [--recipe R]   V-Triune's rule filters, counted per rule
orsta-trl filter difficulty IN OUT --model M --k 8 --keep "0 <= pass < 1" [--iou 0.5]   pass@k filter
orsta-trl plan RECIPE [...] [--gpus N] [--gpu-memory GIB] [--json]   per-GPU memory estimate, and whether it fits
orsta-trl sft RECIPE OUT [--key value ...]   supervised warm-up on the records' reference answers
orsta-trl merge CHECKPOINT OUT               merge a LoRA adapter into full weights (with the processor)
"""

from __future__ import annotations

import argparse
import sys

from orsta_trl.errors import RecipeError, exit_on_error
from orsta_trl.verifiers.registry import short_answer_verifiers


def _make_tiny(args) -> None:
    from orsta_trl.models.tiny import make_tiny_lm, make_tiny_vl

    build = make_tiny_lm if args.text else make_tiny_vl
    path = build(args.dir, seed=args.seed)
    print(f"wrote {'text LM' if args.text else 'Qwen2.5-VL'} to {path}")


def _synth(args) -> None:
    from orsta_trl.data.synth import synth

    tasks = [t for item in args.tasks for t in item.split(",") if t] if args.tasks else None
    path = synth(args.out, n=args.n, seed=args.seed, tasks=tasks)
    print(f"wrote {path}")


def _check_data(args) -> int:
    from orsta_trl.data.load import records_table
    from orsta_trl.data.records import load_records, skipped_report, split_records
    from orsta_trl.recipe import orsta_config_from

    # the recipe's own verifiers (verifier_modules, reward_funcs) join the registry before any record is read
    orsta_config_from(args.recipe)

    if args.skip_invalid:  # as `skip_invalid: true` trains: the valid records, the invalid ones reported
        records, errors = split_records(args.paths)
        if errors:
            print(f"skipped {len(errors)} invalid record(s):\n{skipped_report(errors)}", file=sys.stderr)
            for error in errors[:10]:
                print(f"  {error}", file=sys.stderr)
    else:
        records = load_records(args.paths)
    if not records:
        print(f"error: no records in {', '.join(args.paths)}", file=sys.stderr)
        return 1
    print(records_table(records))
    print(f"{len(records)} valid record(s) in {len({r.data_source for r in records})} source(s)")
    return 0


def _check_recipe(args) -> int:
    from orsta_trl.recipe import load_recipe
    from orsta_trl.recipe.checks import path_problems

    failed = 0
    for path in args.recipes:
        try:
            recipe = load_recipe(path, check=True)
            problems = (
                [] if args.skip_paths else path_problems(recipe, here=False)
            )  # hub ids are left to the hub
            if problems:
                raise RecipeError(
                    f"{path}: {problems[0]}"
                    if len(problems) == 1
                    else f"{path}: {len(problems)} problems:\n"
                    + "\n".join(f"  {path}: {p}" for p in problems)
                )
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


def _view(args) -> int:
    from orsta_trl.monitor.viewer import view_main

    return view_main(args.run_dir, args.output, args.source, args.steps, args.data or ())


def _report(args) -> int:
    from orsta_trl.monitor.report import report_main

    return report_main(args.run_dir, args.output)


def _convert(args) -> int:
    from orsta_trl.data import convert

    if args.kind == "vtriune":
        report = convert.vtriune(args.src, args.out)
    elif args.kind == "verl":
        mapping = convert.load_mapping(args.map) if args.map else None
        report = convert.verl(args.src, args.out, verifier=args.verifier, mapping=mapping)
    elif args.kind == "coco":
        report = convert.coco(
            args.src, args.out, images_dir=args.images, per=args.per, data_source=args.data_source or "coco"
        )
    elif args.kind == "refcoco":
        report = convert.refcoco(
            args.src, args.out, images_dir=args.images, bbox_format=args.bbox_format,
            data_source=args.data_source or "refcoco",
        )  # fmt: skip
    else:
        report = convert.qa(
            args.src, args.out, verifier=args.verifier, data_source=args.data_source,
            question_key=args.question_key, answer_key=args.answer_key, image_key=args.image_key,
        )  # fmt: skip
    for line in report.lines():
        print(line)
    return 0 if report.written else 1


def _recipe_processor(recipe_path: str, max_prompt_length: int | None = None):
    """(processor, max_prompt_length, tools) that training with this recipe would use (tools: for their schemas;
    MCP servers are listed, then stopped)."""
    from orsta_trl.api import recipe_processor
    from orsta_trl.evaluation.offline import offline_tools
    from orsta_trl.recipe import load_recipe

    recipe = load_recipe(recipe_path, check=True)
    processor, _ = recipe_processor(recipe)
    toolset = offline_tools(recipe.orsta, processor)
    tools = None if toolset is None else toolset.schema_tools()
    if toolset is not None:
        toolset.close()
    return processor, max_prompt_length or recipe.orsta.max_prompt_length, tools


def _filter(args) -> int:
    if args.stage == "rules":
        from orsta_trl.data.filters import filter_rules_file, load_rules_config

        config = load_rules_config(args.config)
        processor = tools = None
        if args.recipe:
            processor, length, tools = _recipe_processor(
                args.recipe, config["max_prompt_length"]["max_prompt_length"]
            )
            config["max_prompt_length"]["max_prompt_length"] = length
        report = filter_rules_file(args.src, args.out, config, processing_class=processor, tools=tools)
        for line in report.lines():
            print(line)
        print(f"wrote {report.kept} record(s) to {args.out}")
        return 0
    from orsta_trl.difficulty import filter_difficulty

    report = filter_difficulty(
        args.src, args.out, model=args.model, k=args.k, keep=args.keep, iou=args.iou,
        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, temperature=args.temperature,
        seed=args.seed, recipe=args.recipe, cache=args.cache,
    )  # fmt: skip
    for line in report.lines():
        print(line)
    print(f"wrote {sum(report.kept.values())} record(s) to {args.out}")
    return 0


def _sft(args) -> int:
    from orsta_trl.recipe import load_recipe
    from orsta_trl.warmup import sft_warmup

    sft_warmup(load_recipe(args.recipe, args.rest), args.out)
    return 0


def _merge(args) -> int:
    from orsta_trl.models.lora import merge_adapter

    out = merge_adapter(args.checkpoint, args.out)
    print(f"wrote merged weights and processor to {out}")
    return 0


def _steps(value: str) -> str:
    """``--steps`` checked as argparse parses it: N, A:B, A: or :B."""
    from orsta_trl.monitor.viewer import parse_steps

    try:
        parse_steps(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N, A:B, A: or :B (whole steps), got {value!r}") from None
    return value


def _threshold(value: str):
    return value if value == "average" else float(value)


def _plan(args) -> int:
    from orsta_trl.memory_plan import plan_command

    print(plan_command(args.recipes, args.gpus, args.gpu_memory, args.json))
    return 0


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
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="summarise the valid records and report the invalid ones (as `skip_invalid: true` trains)",
    )
    p.add_argument(
        "--recipe", default=None, help="a recipe whose verifier_modules and reward_funcs records name"
    )
    p.set_defaults(func=_check_data)

    p = sub.add_parser("check-recipe", help="validate recipes without loading weights")
    p.add_argument("recipes", nargs="+")
    p.add_argument(
        "--skip-paths",
        action="store_true",
        help="check keys and values only, not that local model, data and output paths exist (data not prepared)",
    )
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

    p = sub.add_parser("view", help="one self-contained HTML page of a run's completions, boxes drawn")
    p.add_argument("run_dir")
    p.add_argument("-o", "--output", default=None, help="the HTML file (default RUN_DIR/viewer.html)")
    p.add_argument("--source", nargs="+", default=None, help="only these data sources")
    p.add_argument("--steps", type=_steps, default=None, help="only these steps: N, A:B, A: or :B")
    p.add_argument(
        "--data", nargs="+", default=None, help="record files, for dumps written without records.jsonl"
    )
    p.set_defaults(func=_view)

    p = sub.add_parser("convert", help="import V-Triune, verl/EasyR1, COCO, RefCOCO or QA files as records")
    kinds = p.add_subparsers(dest="kind", required=True)
    for kind, text in (
        ("vtriune", "V-Triune's Parquet (verl format with their reward_model)"),
        ("verl", "generic verl/EasyR1 Parquet or JSONL"),
        ("coco", "COCO instances JSON + image folder -> detection"),
        ("refcoco", "referring expressions with one box -> grounding"),
        ("qa", "question/answer JSONL, CSV or Parquet -> math, count or ocr"),
    ):
        k = kinds.add_parser(kind, help=text)
        k.add_argument("src")
        k.add_argument("out", help="the .jsonl to write (images go to images/ beside it)")
        if kind == "verl":
            k.add_argument("--verifier", default=None, help="the verifier of every row")
            k.add_argument("--map", default=None, help="YAML/JSON file: data_source -> verifier")
        if kind in ("coco", "refcoco"):
            k.add_argument("--images", default=None, help="image folder (default: the input's folder)")
        if kind == "coco":
            k.add_argument("--per", choices=("image", "category"), default="image")
        if kind == "refcoco":
            k.add_argument("--bbox-format", choices=("xywh", "xyxy"), default="xywh")
        if kind in ("coco", "refcoco", "qa"):
            k.add_argument("--data-source", default=None)
        if kind == "qa":
            k.add_argument("--verifier", choices=short_answer_verifiers(), default="math")
            k.add_argument("--question-key", default="question")
            k.add_argument("--answer-key", default="answer")
            k.add_argument("--image-key", default="image")
        k.set_defaults(func=_convert, kind=kind)

    p = sub.add_parser("filter", help="rule filters and the pass@k difficulty filter")
    stages = p.add_subparsers(dest="stage", required=True)
    k = stages.add_parser(
        "rules", help="drop choice questions, unverifiable math, crowded boxes, long prompts"
    )
    k.add_argument("src")
    k.add_argument("out")
    k.add_argument("--config", default=None, help="YAML: {rule: {enabled: bool, setting: value}}")
    k.add_argument(
        "--recipe", default=None, help="apply max_prompt_length with this recipe's model and pixels"
    )
    k.set_defaults(func=_filter)
    k = stages.add_parser(
        "difficulty", help="pass@k with a model: keep what it sometimes, not always, solves"
    )
    k.add_argument("src")
    k.add_argument("out")
    k.add_argument("--model", required=True, help="model folder, hub id or LoRA adapter folder")
    k.add_argument("--k", type=int, default=8, help="sampled completions per record")
    k.add_argument("--keep", default="0 <= pass < 1", help="e.g. '0 <= pass < 1' or '2 <= reward_sum <= 10'")
    k.add_argument("--iou", type=float, default=None, help="fixed IoU for detection (default: 'average')")
    k.add_argument("--max-new-tokens", type=int, default=256)
    k.add_argument("--batch-size", type=int, default=4, help="records per batch (batch_size * k sequences)")
    k.add_argument("--temperature", type=float, default=1.0)
    k.add_argument("--seed", type=int, default=0)
    k.add_argument(
        "--recipe", default=None, help="pixel bounds, reward settings, correct_threshold, prompt pool"
    )
    k.add_argument("--cache", default=None, help="resume cache (default OUT.cache.jsonl)")
    k.set_defaults(func=_filter)
    p = sub.add_parser("plan", help="per-GPU memory estimate of recipes (meta device, no weights), and a fix")
    p.add_argument("recipes", nargs="+")
    p.add_argument("--gpus", type=int, default=8, help="GPUs that train (default 8: one node)")
    p.add_argument("--gpu-memory", type=float, default=80.0, help="GiB per GPU (default 80)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=_plan)

    p = sub.add_parser("sft", help="supervised warm-up (TRL's SFTTrainer) on the records' reference answers")
    p.add_argument("recipe")
    p.add_argument("out", help="where the warmed-up model and processor are written")
    p.add_argument(
        "rest", nargs=argparse.REMAINDER, help="--key value recipe overrides (--warmup_sft_steps N)"
    )
    p.set_defaults(func=_sft)

    p = sub.add_parser(
        "merge", help="merge a LoRA checkpoint into full weights loadable with from_pretrained"
    )
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.set_defaults(func=_merge)
    _show_defaults(parser)
    return parser


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every option's ``--help`` line ends with its default, unless it is None/False or the help says it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _show_defaults(child)
        elif action.option_strings and not any(action.default is v for v in (None, False, argparse.SUPPRESS)):
            if "default" not in (action.help or ""):
                action.help = f"{action.help or ''} (default: %(default)s)".lstrip()


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        from orsta_trl.train import main as train_main

        raise SystemExit(train_main(argv[1:]))
    args = build_parser().parse_args(argv)
    raise SystemExit(exit_on_error(lambda: args.func(args)))


if __name__ == "__main__":
    main()
