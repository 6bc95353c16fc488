"""A small real OpenAI-compatible server for the judge tests: ``GET /v1/models`` and
``POST /v1/chat/completions`` over a transformers causal LM, on a loopback port, in a thread.

``transformers serve`` is tested as a judge too (``tests/test_judge.py``), but it cannot be told to sleep or to
fail, nor report what it saw; this server can. Knobs for the tests: ``delay_s`` (sleep
before answering), ``fail`` (a predicate on the request number, 1-based: answer HTTP 503 instead),
``models_status`` (the HTTP status of ``GET /v1/models``: 500 as ``transformers serve`` answers without a hub
cache), and what it
observed: ``requests``, ``max_in_flight`` (requests being served at the same time), ``auth`` (Authorization
headers seen).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JudgeServer:
    def __init__(
        self,
        model_dir,
        served_name: str = "tiny-judge",
        delay_s: float = 0.0,
        fail=None,
        models_status: int = 200,
    ):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self.served_name, self.delay_s, self.fail, self.models_status = (
            served_name,
            delay_s,
            fail,
            models_status,
        )
        self.requests = self.in_flight = self.max_in_flight = 0
        self.auth: list[str | None] = []
        self._lock, self._generate_lock = threading.Lock(), threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/v1/models" and server.models_status != 200:
                    self._send(server.models_status, {"error": "internal error"})
                elif self.path == "/v1/models":
                    self._send(
                        200, {"object": "list", "data": [{"id": server.served_name, "object": "model"}]}
                    )
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests += 1
                    number = server.requests
                    server.auth.append(self.headers.get("Authorization"))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    status, reply = server.answer(self.path, body, number)
                finally:  # counted out before the reply leaves, so the client's next request cannot overlap it
                    with server._lock:
                        server.in_flight -= 1
                try:
                    self._send(status, reply)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def answer(self, path: str, body: dict, number: int) -> tuple[int, dict]:
        time.sleep(self.delay_s)
        if path != "/v1/chat/completions":
            return 404, {"error": "not found"}
        if self.fail is not None and self.fail(number):
            return 503, {"error": "overloaded"}
        text = self.complete(body["messages"], int(body.get("max_tokens") or 16))
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        return 200, {"object": "chat.completion", "model": body["model"], "choices": [choice]}

    def complete(self, messages, max_tokens: int) -> str:
        import torch

        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        encoded = self.tokenizer(text, return_tensors="pt")
        with self._generate_lock, torch.inference_mode():
            out = self.model.generate(
                **encoded,
                do_sample=False,
                max_new_tokens=max_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        return self.tokenizer.decode(out[0, encoded["input_ids"].shape[1] :], skip_special_tokens=True)

    def __enter__(self) -> JudgeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
