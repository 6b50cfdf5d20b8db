"""A FastAPI app: JSON, form upload, streaming, background tasks.

Run: ruvicorn --app-dir examples fastapi_app:app

Needs the examples extra: pip install 'ruvicorn[examples]' python-multipart
"""

import asyncio
from typing import Annotated

from fastapi import BackgroundTasks, FastAPI, File, Form, UploadFile, WebSocket
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

app = FastAPI(title="ruvicorn example")


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


@app.get("/")
async def root() -> dict[str, str]:
    return {"hello": "world"}


@app.post("/items")
async def create_item(item: Item) -> dict[str, object]:
    return {"item": item.model_dump(), "total": item.price * 2}


@app.post("/upload")
async def upload(
    title: Annotated[str, Form()], file: Annotated[UploadFile, File()]
) -> dict[str, object]:
    data = await file.read()
    return {"title": title, "filename": file.filename, "size": len(data)}


@app.get("/stream")
async def stream(count: int = 5) -> StreamingResponse:
    async def numbers():
        for i in range(min(count, 1000)):
            yield f"{i}\n"
            await asyncio.sleep(0)

    return StreamingResponse(numbers(), media_type="text/plain")


#: Tokens whose background task ran (after their response was sent).
DONE: list[str] = []


async def note(token: str) -> None:
    await asyncio.sleep(0)
    DONE.append(token)


@app.post("/background")
async def queue_background(token: str, tasks: BackgroundTasks) -> dict[str, str]:
    tasks.add_task(note, token)
    return {"queued": token}


@app.get("/background")
async def background_done() -> dict[str, list[str]]:
    return {"done": DONE}


@app.websocket("/ws")
async def websocket_echo(websocket: WebSocket) -> None:
    # Served once ruvicorn speaks WebSocket.
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)
