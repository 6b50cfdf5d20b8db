"""Lifespan startup fills scope["state"] that every request sees.

Run: ruvicorn --app-dir examples --lifespan on lifespan_state:app
"""

import json
import time


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # A real app would open its database pool here.
                scope["state"]["started_at"] = time.time()
                scope["state"]["greeting"] = "hello from startup"
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    state = scope["state"]  # a shallow copy of the lifespan state, per request
    body = json.dumps(
        {"greeting": state["greeting"], "uptime": round(time.time() - state["started_at"], 3)}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
