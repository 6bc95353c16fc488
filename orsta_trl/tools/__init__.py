"""Tool use (issue 11): what TRL's multi-turn tool loop runs, and the chat templates that let the model call it.

* :mod:`~orsta_trl.tools.chat`: tool-capable Qwen2.5(-VL) templates (``templates/*.jinja``) and their parser;
* built-in tools: :mod:`~orsta_trl.tools.calculator`, :mod:`~orsta_trl.tools.python` (over
  :mod:`~orsta_trl.tools.sandbox`), :mod:`~orsta_trl.tools.crop` (``crop`` and ``zoom``);
* :mod:`~orsta_trl.tools.mcp`: MCP servers over stdio; :mod:`~orsta_trl.tools.registry`: the run's tools by
  name, user modules, and the wrapper that makes every tool safe to call;
* :mod:`~orsta_trl.tools.result`: a result that carries its real outcome to the reward.

This package sits with ``data`` and ``models`` (it imports only ``errors``/``keys`` below it); the rewards layer
reads outcomes through :func:`~orsta_trl.tools.result.call_succeeded`.
"""
