"""Tool use: what TRL's multi-turn tool loop runs, and the chat templates that let the model call it.

* :mod:`~orsta_trl.tools.chat`: tool-capable Qwen2.5(-VL) templates (``templates/*.jinja``) and their parser;
* built-in tools, callable here as plain functions: :func:`calculator` (:mod:`~orsta_trl.tools.arithmetic`),
  :func:`python` (:mod:`~orsta_trl.tools.python_tool`, over :mod:`~orsta_trl.tools.sandbox`; its limits are the
  recipe's ``tool_timeout_s`` / ``tool_memory_mb`` when a run builds it), and :mod:`~orsta_trl.tools.crop`
  (``crop`` and ``zoom``, per rollout over the record's images);
* :mod:`~orsta_trl.tools.mcp`: MCP servers over stdio; :mod:`~orsta_trl.tools.registry`: the run's tools by
  name, user modules, and the wrapper that makes every tool safe to call;
* :mod:`~orsta_trl.tools.result`: a result that carries its real outcome to the reward.

This package sits with ``data`` and ``models`` (it imports only ``errors``/``keys`` below it); the rewards layer
reads outcomes through :func:`~orsta_trl.tools.result.call_succeeded`.
"""

from orsta_trl.tools.arithmetic import calculator
from orsta_trl.tools.python_tool import python

__all__ = ["calculator", "python"]
