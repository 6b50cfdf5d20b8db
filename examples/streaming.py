"""Stream a response in chunks. Run: ruvicorn --app-dir examples streaming:app

Try: curl -N http://127.0.0.1:8000/?count=5 (one line every half second).
"""

import asyncio
from urllib.parse import parse_qs


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    query = parse_qs(scope["query_string"].decode("latin-1"))
    count = min(int(query.get("count", ["10"])[0]), 1000)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    for i in range(count):
        # await send() returns only once the client keeps up (flow control).
        chunk = f"chunk {i}\n".encode()
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await asyncio.sleep(0.5)
    await send({"type": "http.response.body", "body": b"done\n", "more_body": False})
