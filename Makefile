# The runbook. `make demo` and `make test` each set everything up on a fresh machine.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
PY := .venv/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test lint bench clean

# Idempotent: gets uv if missing, then creates/updates .venv from the committed uv.lock.
setup: .venv/.synced
.venv/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --compile-bytecode
	@touch $@

demo/tiny-vl/config.json: | setup
	$(PY) -m orsta_trl.cli make-tiny demo/tiny-vl

demo/data/data.jsonl: | setup
	$(PY) -m orsta_trl.cli synth demo/data --n 16 --seed 0

demo/eval/data.jsonl: | setup
	$(PY) -m orsta_trl.cli synth demo/eval --n 4 --seed 1

# Trains the tiny Qwen2.5-VL on synthetic V-Triune tasks on the CPU, through the real entry point,
# then turns the run's TensorBoard logs into per-source plots and a summary (demo/run/report/).
demo: setup demo/tiny-vl/config.json demo/data/data.jsonl demo/eval/data.jsonl
	rm -rf demo/run
	time $(PY) orsta_trl/train.py recipes/tiny_cpu.yaml
	$(PY) -m orsta_trl.cli report demo/run

test: setup
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check orsta_trl tests benchmarks
	$(PY) -m ruff format --check orsta_trl tests benchmarks

bench: setup
	$(PY) benchmarks/rewards.py
	$(PY) benchmarks/monitor_overhead.py
	$(PY) benchmarks/param_counts.py
	$(PY) benchmarks/fuzz.py
	$(PY) benchmarks/judge.py

clean:
	rm -rf demo .pytest_cache
