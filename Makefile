# The runbook. `make demo` and `make test` each set everything up on a fresh machine.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
PY := .venv/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup browser demo test lint bench clean

# Idempotent: gets uv if missing, then creates/updates .venv from the committed uv.lock.
setup: .venv/.synced
.venv/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --compile-bytecode --extra deepspeed
	@touch $@

# The viewer's browser tests need a headless Chromium: Debian's `chromium`, installed where missing (as root, or
# with sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if ! command -v apt-get >/dev/null 2>&1; then echo "install Chromium (the viewer's browser tests need it)" >&2; exit 1; fi; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

demo/tiny-vl/config.json: | setup
	$(PY) -m orsta_trl.cli make-tiny demo/tiny-vl

demo/data/data.jsonl: | setup
	$(PY) -m orsta_trl.cli synth demo/data --n 16 --seed 0

demo/eval/data.jsonl: | setup
	$(PY) -m orsta_trl.cli synth demo/eval --n 4 --seed 1

# The demo's tasks (issue 15): one large shape on a 112x112 canvas, name its colour or its shape.
DEMO_TASKS := colour,shape

demo/easy/data.jsonl: | setup
	$(PY) -m orsta_trl.cli synth demo/easy --n 400 --seed 0 --tasks $(DEMO_TASKS)

demo/easy_eval/data.jsonl: | setup
	$(PY) -m orsta_trl.cli synth demo/easy_eval --n 200 --seed 1000 --tasks $(DEMO_TASKS)

# The "instruct" starting point: a supervised warm-up of the tiny model on the reference answers, cached.
demo/warm/config.json: demo/tiny-vl/config.json demo/easy/data.jsonl
	OMP_NUM_THREADS=1 $(PY) -m orsta_trl.cli sft recipes/demo_cpu.yaml demo/warm --model_name_or_path demo/tiny-vl

# GRPO from the warm-up on the verifier's reward alone, through the real entry point; held-out greedy accuracy
# before the first step and every 10 steps, a per-source table of it at the end, then per-source plots and a
# summary from the run's TensorBoard logs (demo/run/report/), and last the path of the rollout viewer's page
# (demo/run/viewer.html). One torch thread: two are 20x slower on a busy
# 2-core machine.
demo: setup demo/warm/config.json demo/easy_eval/data.jsonl demo/data/data.jsonl demo/eval/data.jsonl
	rm -rf demo/run
	time OMP_NUM_THREADS=1 $(PY) orsta_trl/train.py recipes/demo_cpu.yaml
	$(PY) -m orsta_trl.cli report demo/run
	$(PY) -m orsta_trl.cli view demo/run -o demo/run/viewer.html

test: setup browser
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check orsta_trl tests benchmarks
	$(PY) -m ruff format --check orsta_trl tests benchmarks

bench: setup
	$(PY) benchmarks/rewards.py
	$(PY) benchmarks/monitor_overhead.py
	$(PY) benchmarks/param_counts.py
	$(PY) benchmarks/memory_plan_vs_deepspeed.py
	$(PY) benchmarks/fuzz.py
	$(PY) benchmarks/scaling.py
	OMP_NUM_THREADS=1 $(PY) benchmarks/trainer_overhead.py
	$(PY) benchmarks/gpu_smoke.py --dry-run
	$(PY) benchmarks/tools.py
	$(PY) benchmarks/judge.py

clean:
	rm -rf demo .pytest_cache
