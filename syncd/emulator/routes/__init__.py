"""The emulator's route handlers, one module per resource of the Training API.

Modules: `common` (the app's state, error answers, parameter and body parsing), `domains`,
`projects`, `tags`, `images` (listings, counts, uploads, tagging, deletes, metadata), `iterations`
(simulated training, performance, and the mispredictions test seam), `blobs` (the bytes behind
image URIs). Each exposes `ROUTES`; `syncd.emulator.app.create_app` mounts them.

Handlers are plain functions: they find the store through `common.emulator(request)` (the app's
state), and call it in a worker thread (`common.run`).
"""
