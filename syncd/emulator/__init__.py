"""A local stand-in for the Azure Custom Vision Training API v3.3 (`syncd emulator`).

Modules: `store` (SQLite + content-addressed blobs), `app` (the HTTP routes), `faults` (injected
throttling, failures, drops, latency), `imageinfo` (format and size from image bytes), `server`
(uvicorn in a thread, and the CLI), `embedded` (in-process httpx transport).
It imports nothing from `syncd.api`: the two are independent readings of the spec.
"""
