"""A local stand-in for the Azure Custom Vision Training API v3.3 (`syncd emulator`).

Modules:
- `app`: `create_app`, the Starlette app: the route modules mounted under the API prefixes, the
  key check, the fault and observer middleware;
- `routes/`: the handlers, one module per resource (domains, projects, tags, images, iterations,
  blobs) and `common` (errors, parameter and body parsing);
- `store/`: the state (`Store`): SQLite (`db`), content-addressed image bytes (`blobs`), the
  `$filter` parser (`filter`), simulated training (`training`), one part per resource;
- `limits`: every limit and quota the emulator enforces, with the spec's words;
- `faults`: injected throttling, failures, dropped responses, latency;
- `imageinfo`: image format and size from the bytes;
- `server`: uvicorn in a thread (`EmulatorServer`) and the `syncd emulator` command;
- `options`: that command's options, apart so `syncd --help` skips the web stack;
- `embedded`: the app in-process, as an httpx transport.
It imports nothing from `syncd` outside this package: the emulator and `syncd.api` are
independent readings of the spec.
"""
