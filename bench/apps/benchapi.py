"""The ``json`` workload: one FastAPI endpoint, the common real-world shape of an ASGI app.

Here the framework dominates the cost, so this workload shows how much of a server's speed
survives under a typical application.
"""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/json")
async def hello() -> dict[str, str]:
    """A small JSON document, serialized by the framework."""
    return {"message": "Hello, world!"}
