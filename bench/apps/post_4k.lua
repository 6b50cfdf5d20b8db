-- echo workload: every request is a POST with a 4 KiB body (4096 bytes of "x").
wrk.method = "POST"
wrk.body = string.rep("x", 4096)
wrk.headers["Content-Type"] = "application/octet-stream"
