"""The pure layer: the nouns, the rules and the planner, with no I/O.

Modules: model (the frozen nouns), policy (the choices a mirror's config makes, as core reads
them), limits (the service limits the scanner and planner obey), mapping (folder <-> tag, both
directions), globs (the include/exclude patterns), imageformat (magic bytes), planner (the Plan).

Nothing here imports a module that does I/O (no httpx, sqlite, structlog, watchdog, no file or
network access) nor anything from syncd outside syncd.core: `python -c "import syncd.core.planner"`
loads none of them (tests/test_layers.py).
"""
