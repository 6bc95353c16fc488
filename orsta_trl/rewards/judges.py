"""Judge backends: the models that answer the ``judge`` verifier's prompts, defined in the recipe's ``judges:``.

Two backends, one interface (``check_ready()``, ``generate(prompts) -> list[str | JudgeFailure]``, ``close()``):

* ``transformers``: a local causal LM, loaded once per process (so once per rank) on ``device`` (``auto``: this
  rank's GPU, else the CPU; or a named device such as ``cuda:7``). Greedy, in batches of ``batch_size``, at
  most ``max_new_tokens`` new tokens; the tokenizer's chat template wraps each prompt when it has one.
  ``timeout_s`` becomes ``generate(max_time=...)`` per batch: a reply cut short by it is a ``judge_timeout``.
* ``openai``: any OpenAI-compatible chat-completions endpoint (``vllm serve``, ``transformers serve``, a hosted
  API). ``url`` is the base URL (``http://127.0.0.1:8000/v1``), ``model`` the served model name, and
  ``api_key_env`` the *name* of the environment variable holding the key (the key never enters a recipe).
  Requests run concurrently, at most ``max_concurrency`` at once, each attempt under ``timeout_s``; timeouts,
  connection errors and HTTP 408/409/429/5xx are retried ``retries`` times with exponential backoff
  (``backoff_s`` × 2^attempt, plus up to 25 % jitter). Greedy (``temperature: 0``).

Deviation from "use the official SDK": the client is httpx (already a dependency of the stack) with a retry loop
of our own, because the ``openai`` SDK is not installed without the GPU extra and its backoff schedule is not
configurable, while the recipe promises ``retries`` and ``backoff_s``.

A backend is built once per process and judge definition (:func:`get_backend`), so the readiness check before
training and the router share one loaded model; :func:`close_backend` releases it at the end of a run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from orsta_trl.errors import NotReady, RecipeError
from orsta_trl.keys import unknown_key_message
from orsta_trl.verifiers.base import GraderFailure

BACKENDS = ("transformers", "openai")
_COMMON = ("backend", "model", "max_new_tokens", "timeout_s", "cache")
#: The keys each backend accepts (``model`` is required by both; ``url`` by ``openai``).
KEYS = {
    "transformers": (*_COMMON, "device", "dtype", "batch_size", "chat_template"),
    "openai": (*_COMMON, "url", "api_key_env", "max_concurrency", "retries", "backoff_s"),
}
_RETRY_STATUS = (408, 409, 429, 500, 502, 503, 504)


@dataclass(frozen=True)
class JudgeFailure(GraderFailure):
    """No reply: ``reason`` is ``judge_timeout`` or ``judge_error``; ``detail`` says what happened."""


@dataclass(frozen=True)
class JudgeConfig:
    """One entry of the recipe's ``judges:`` (see the module docstring for each key)."""

    name: str
    backend: str
    model: str
    max_new_tokens: int = 64
    timeout_s: float | None = None  # transformers: none; openai: 60
    cache: int = 0
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 8
    chat_template: bool = True
    url: str = ""
    api_key_env: str | None = None
    max_concurrency: int = 8
    retries: int = 2
    backoff_s: float = 1.0

    def key(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def judge_config(name: str, raw: Any) -> JudgeConfig:
    """Validate one ``judges:`` entry; a RecipeError names ``judges.<name>.<key>`` and what to change."""
    where = f"judges.{name}"
    if not isinstance(raw, dict):
        raise RecipeError(f"{where}: must be a mapping with at least 'backend' and 'model', got {raw!r:.80}")
    backend = raw.get("backend")
    if backend not in BACKENDS:
        raise RecipeError(f"{where}.backend: {unknown_key_message('judge backend', str(backend), BACKENDS)}")
    for key in raw:
        if key not in KEYS[backend]:
            raise RecipeError(f"{where}: {unknown_key_message(f'{backend} judge key', key, KEYS[backend])}")
    values = dict(raw)
    if backend == "openai":
        values.setdefault("timeout_s", 60.0)
    for key in ("model", *(("url",) if backend == "openai" else ())):
        if not isinstance(values.get(key), str) or not values[key]:
            raise RecipeError(f"{where}.{key}: required, a non-empty string")
    if backend == "openai" and not values["url"].startswith(("http://", "https://")):
        raise RecipeError(f"{where}.url: must start with http:// or https://, got {values['url']!r}")
    for key, low in (
        ("max_new_tokens", 1),
        ("batch_size", 1),
        ("max_concurrency", 1),
        ("retries", 0),
        ("cache", 0),
    ):
        value = values.get(key, 0 if low == 0 else 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise RecipeError(f"{where}.{key}: must be an integer >= {low}, got {value!r}")
    for key in ("timeout_s", "backoff_s"):
        value = values.get(key, 1.0)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise RecipeError(f"{where}.{key}: must be a number of seconds >= 0, got {value!r}")
    if values.get("timeout_s") == 0:
        raise RecipeError(f"{where}.timeout_s: 0 s leaves no time to answer; give a positive number")
    for key in ("device", "dtype", "api_key_env"):
        if key in values and values[key] is not None and not isinstance(values[key], str):
            raise RecipeError(f"{where}.{key}: must be a string, got {values[key]!r}")
    if not isinstance(values.get("chat_template", True), bool):
        raise RecipeError(f"{where}.chat_template: must be true or false")
    return JudgeConfig(name=name, **values)


def judge_configs(raw: Any) -> dict[str, JudgeConfig]:
    """Validate the recipe's ``judges:`` mapping (name → definition)."""
    if not isinstance(raw, dict):
        raise RecipeError(f"judges: must be a mapping of judge names to definitions, got {raw!r:.80}")
    return {str(name): judge_config(str(name), value) for name, value in raw.items()}


class TransformersJudge:
    """A local causal LM as the judge: loaded once, greedy, batched."""

    def __init__(self, config: JudgeConfig):
        self.config = config
        self._lock = threading.Lock()
        self._model = self._tokenizer = None

    def check_ready(self) -> None:
        try:
            self._load()
        except Exception as exc:
            raise NotReady(
                f"judge {self.config.name!r}: cannot load the transformers model {self.config.model!r} "
                f"on {self.config.device!r}: {type(exc).__name__}: {exc}"
            ) from exc

    def device(self) -> str:
        if self.config.device != "auto":
            return self.config.device
        import torch

        if torch.cuda.is_available():
            return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        return "cpu"

    def _load(self):
        with self._lock:
            if self._model is None:
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(self.config.model)
                tokenizer.padding_side = "left"
                if tokenizer.pad_token is None:
                    tokenizer.pad_token = tokenizer.eos_token
                dtype = (
                    self.config.dtype if self.config.dtype == "auto" else getattr(torch, self.config.dtype)
                )
                model = AutoModelForCausalLM.from_pretrained(self.config.model, dtype=dtype)
                self._model, self._tokenizer = model.to(self.device()).eval(), tokenizer
        return self._model, self._tokenizer

    def _text(self, prompt: str) -> str:
        tokenizer = self._tokenizer
        if self.config.chat_template and tokenizer.chat_template:
            return tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        return prompt

    def generate(self, prompts: list[str]) -> list[str | JudgeFailure]:
        """Greedy replies, one per prompt; a batch that fails gives each of its prompts a JudgeFailure."""
        replies: list[str | JudgeFailure] = []
        size = self.config.batch_size
        for start in range(0, len(prompts), size):
            replies.extend(self._batch(prompts[start : start + size]))
        return replies

    def _batch(self, prompts: list[str]) -> list[str | JudgeFailure]:
        import torch

        try:
            model, tokenizer = self._load()
            encoded = tokenizer([self._text(p) for p in prompts], return_tensors="pt", padding=True)
            encoded = encoded.to(model.device)
            started = time.monotonic()
            with torch.inference_mode():
                out = model.generate(
                    **encoded,
                    do_sample=False,
                    max_new_tokens=self.config.max_new_tokens,
                    max_time=self.config.timeout_s,
                    pad_token_id=tokenizer.pad_token_id,
                )
            elapsed = time.monotonic() - started
        except Exception as exc:  # a judge failure never crashes training
            if len(prompts) > 1:  # one bad prompt must not fail its neighbours: ask each alone
                return [reply for prompt in prompts for reply in self._batch([prompt])]
            return [JudgeFailure("judge_error", f"{type(exc).__name__}: {exc}")]
        new = out[:, encoded["input_ids"].shape[1] :]
        stops = set(_as_list(model.generation_config.eos_token_id)) | {tokenizer.eos_token_id}
        cut_by_time = self.config.timeout_s is not None and elapsed >= self.config.timeout_s
        replies: list[str | JudgeFailure] = []
        for ids in new.tolist():
            finished = any(t in stops for t in ids) or len(ids) >= self.config.max_new_tokens
            if cut_by_time and not finished:
                replies.append(JudgeFailure("judge_timeout", f"generation passed {self.config.timeout_s} s"))
            else:
                replies.append(tokenizer.decode(ids, skip_special_tokens=True))
        return replies

    def close(self) -> None:
        with self._lock:
            self._model = self._tokenizer = None


class OpenAIJudge:
    """An OpenAI-compatible chat-completions endpoint as the judge: concurrent, timed out, retried."""

    def __init__(self, config: JudgeConfig):
        self.config = config
        self._client = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _api_key(self) -> str | None:
        name = self.config.api_key_env
        if not name:
            return None
        key = os.environ.get(name)
        if not key:
            raise NotReady(
                f"judge {self.config.name!r}: the environment variable {name} (judges.{self.config.name}."
                "api_key_env) is not set: export the API key under that name"
            )
        return key

    def client(self):
        with self._lock:
            if self._client is None:
                import httpx

                key = self._api_key()
                self._client = httpx.Client(
                    base_url=self.config.url.rstrip("/") + "/",
                    timeout=self.config.timeout_s,
                    headers={"Authorization": f"Bearer {key}"} if key else {},
                    limits=httpx.Limits(max_connections=self.config.max_concurrency),
                )
                self._executor = ThreadPoolExecutor(self.config.max_concurrency, thread_name_prefix="judge")
            return self._client

    def check_ready(self) -> None:
        """The server answers, accepts the key, and serves ``model``: ``GET {url}/models`` when it lists models;
        when that route fails (``transformers serve`` answers HTTP 500 there without a hub cache folder), one
        chat request of one token."""
        import httpx

        name, url = self.config.name, self.config.url
        client = self.client()
        try:
            response = client.get("models", timeout=min(self.config.timeout_s or 10.0, 10.0))
        except httpx.HTTPError as exc:
            raise NotReady(f"judge {name!r}: cannot reach {url} ({type(exc).__name__}: {exc})") from exc
        if response.status_code in (401, 403):
            raise NotReady(f"judge {name!r}: {url} refused the API key (HTTP {response.status_code})")
        served = None
        if response.status_code == 200:
            try:
                served = [m["id"] for m in response.json()["data"]]
            except (ValueError, KeyError, TypeError):
                served = None
        if served and self.config.model not in served:
            raise NotReady(
                f"judge {name!r}: {url} serves {served}, not {self.config.model!r} (judges.{name}.model)"
            )
        if not served:
            # one retry: a server may drop the kept-alive connection after its error on /models
            reply = self._ask("Reply with the word ready.", max_tokens=1, retries=1)
            if isinstance(reply, JudgeFailure):
                raise NotReady(f"judge {name!r}: {url} does not answer a chat request ({reply.detail})")

    def generate(self, prompts: list[str]) -> list[str | JudgeFailure]:
        """One reply per prompt, at most ``max_concurrency`` requests in flight."""
        self.client()
        return list(self._executor.map(self._ask, prompts))

    def _ask(
        self, prompt: str, max_tokens: int | None = None, retries: int | None = None
    ) -> str | JudgeFailure:
        import httpx

        body = {
            "model": self.config.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0.0,
            "max_tokens": max_tokens or self.config.max_new_tokens,
        }
        failure = JudgeFailure("judge_error", "no attempt")
        for attempt in range((self.config.retries if retries is None else retries) + 1):
            if attempt:
                time.sleep(self.config.backoff_s * 2 ** (attempt - 1) * (1 + 0.25 * random.random()))  # noqa: S311
            try:
                response = self._client.post("chat/completions", json=body)
            except httpx.TimeoutException as exc:
                failure = JudgeFailure("judge_timeout", f"no reply within {self.config.timeout_s} s ({exc})")
                continue
            except httpx.HTTPError as exc:
                failure = JudgeFailure("judge_error", f"{type(exc).__name__}: {exc}")
                continue
            if response.status_code == 200:
                try:
                    content = response.json()["choices"][0]["message"]["content"]
                except (ValueError, KeyError, IndexError, TypeError):
                    return JudgeFailure("judge_error", f"malformed response: {response.text[:200]!r}")
                return content if isinstance(content, str) else ""
            failure = JudgeFailure("judge_error", f"HTTP {response.status_code}: {response.text[:200]}")
            if response.status_code not in _RETRY_STATUS:
                return failure
        return failure

    def close(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
            if self._client is not None:
                self._client.close()
                self._client = None


_BACKENDS: dict[str, Any] = {}
_BACKENDS_LOCK = threading.Lock()


def get_backend(config: JudgeConfig):
    """The process's backend for this judge definition, built on first use (its model is not loaded yet)."""
    with _BACKENDS_LOCK:
        backend = _BACKENDS.get(config.key())
        if backend is None:
            backend = (TransformersJudge if config.backend == "transformers" else OpenAIJudge)(config)
            _BACKENDS[config.key()] = backend
        return backend


def close_backend(config: JudgeConfig) -> None:
    """Release this judge's model or connections (a later :func:`get_backend` builds it afresh)."""
    with _BACKENDS_LOCK:
        backend = _BACKENDS.pop(config.key(), None)
    if backend is not None:
        backend.close()


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]
