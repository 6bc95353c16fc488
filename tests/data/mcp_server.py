"""A real MCP server over stdio for the tests: ``add`` and ``slow`` (sleeps), and ``crash`` (exits the process)."""

import os
import time

from mcp.server.mcpserver import MCPServer

server = MCPServer("orsta-test")


@server.tool()
def add(a: int, b: int) -> str:
    """Add two integers and return the sum."""
    return str(a + b)


@server.tool()
def slow(seconds: float) -> str:
    """Sleep for a while, then answer."""
    time.sleep(seconds)
    return "done"


@server.tool()
def crash() -> str:
    """End the server process at once."""
    os._exit(3)


if __name__ == "__main__":
    server.run("stdio")
