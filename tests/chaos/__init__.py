"""The chaos run (driver.py): `python -m tests.chaos` or `make chaos`; a short one in CI."""
