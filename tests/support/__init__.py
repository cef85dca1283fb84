"""Helpers shared by the whole suite; the test key every emulator in the tests accepts.

Modules: images (image files), hostile (a scripted proxy), key_echo (answers that echo the key),
project_view (the project read over plain HTTP), spec_check (responses against the spec),
invariants (tree, ledger and project agree), localfs (faulty local disks).
"""

TEST_KEY = "tk-TEST-0123456789abcdef-SECRET"
