"""Echo the request body back as it arrives. Run: ruvicorn --app-dir examples echo:app

Try: curl -T /etc/services http://127.0.0.1:8000/ (a chunked upload, echoed chunked).
"""


async def app(scope, receive, send):
    if scope["type"] != "http":
        return  # no lifespan needed: ruvicorn's default --lifespan auto copes
    content_type = b"application/octet-stream"
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value
    # No content-length: the server frames the body (chunked on HTTP/1.1).
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", content_type)],
        }
    )
    more_body = True
    while more_body:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more_body = message.get("more_body", False)
        chunk = message.get("body", b"")
        if chunk or not more_body:
            await send({"type": "http.response.body", "body": chunk, "more_body": more_body})
