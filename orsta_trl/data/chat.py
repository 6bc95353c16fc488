"""The text of chat messages: prompts for completion dumps, TRL's conversational completions for the router."""

from __future__ import annotations


def messages_text(messages, sep: str = "") -> str:
    """The text of a string or of chat messages (string contents, or the text of their parts), joined by ``sep``.

    >>> messages_text([{"role": "assistant", "content": "a"}, {"role": "user", "content": [{"type": "image",
    ...     "text": None}, {"type": "text", "text": "b"}]}], sep="|")
    'a|b'
    """
    if isinstance(messages, str):
        return messages
    pieces = []
    for message in messages or []:
        content = message.get("content") if isinstance(message, dict) else message
        if isinstance(content, list):
            pieces.extend(
                p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
        elif content is not None:
            pieces.append(str(content))
    return sep.join(pieces)
