"""A Starlette app: JSON, form upload, streaming, background tasks.

Run: ruvicorn --app-dir examples starlette_app:app

Needs the examples extra: pip install 'ruvicorn[examples]' python-multipart
"""

import asyncio
import contextlib

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket


@contextlib.asynccontextmanager
async def lifespan(app):
    yield {"visits": 0}


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world", "path": request.url.path})


async def echo_json(request: Request) -> JSONResponse:
    return JSONResponse({"received": await request.json()})


async def upload(request: Request) -> JSONResponse:
    async with request.form() as form:
        files = {}
        fields = {}
        for key, value in form.multi_items():
            if hasattr(value, "read"):
                files[key] = {"filename": value.filename, "size": len(await value.read())}
            else:
                fields[key] = value
    return JSONResponse({"fields": fields, "files": files})


async def stream(request: Request) -> StreamingResponse:
    count = min(int(request.query_params.get("count", "5")), 1000)

    async def numbers():
        for i in range(count):
            yield f"{i}\n"
            await asyncio.sleep(0)

    return StreamingResponse(numbers(), media_type="text/plain")


#: Tokens whose background task ran (after their response was sent).
DONE: list[str] = []


async def note(token: str) -> None:
    await asyncio.sleep(0)
    DONE.append(token)


async def background(request: Request) -> JSONResponse:
    if request.method == "POST":
        token = request.query_params.get("token", "")
        return JSONResponse({"queued": token}, background=BackgroundTask(note, token))
    return JSONResponse({"done": DONE})


async def websocket_echo(websocket: WebSocket) -> None:
    # Served once ruvicorn speaks WebSocket; over plain HTTP this route is not reached.
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


app = Starlette(
    routes=[
        Route("/", hello),
        Route("/json", echo_json, methods=["POST"]),
        Route("/upload", upload, methods=["POST"]),
        Route("/stream", stream),
        Route("/background", background, methods=["GET", "POST"]),
        WebSocketRoute("/ws", websocket_echo),
    ],
    lifespan=lifespan,
)
