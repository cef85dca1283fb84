"""The command line: `main` (parser, dispatch, the exit-code table), `commands` (one function
per command, one `session()`), `render` (all human output). The entry point is
`syncd.cli.main:entry_point` (main, then the process's exit); nothing outside this package
imports it."""
