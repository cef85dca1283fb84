"""Fuzz the emulator from the spec with schemathesis: no 5xx, every response matches its schema.

Every operation in the spec (the checked copy in docs/spec/) gets generated requests, valid
ones and deliberately invalid ones, sent in-process to the emulator's ASGI app (no socket) with
the right key and, for most of them, a project that exists (a random id would only ever meet
404 NotFoundProject). Two judges look at each response: schemathesis (no server error, the
response schema and content type) and tests/support/spec_check.py, the suite's own reading of the
Swagger 2.0 document (x-nullable, strict enums, the real-service deviations in docs/spec/DIGEST.md).

Bounded by FUZZ_EXAMPLES per operation (env SYNCD_FUZZ_EXAMPLES raises it for a longer hunt).
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import uuid
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from syncd.emulator.app import create_app
from syncd.emulator.store import Store
from tests.support import TEST_KEY
from tests.support.spec_check import SPEC_FILE, SpecChecker

FUZZ_EXAMPLES = int(os.environ.get("SYNCD_FUZZ_EXAMPLES", "12"))

spec_checker = SpecChecker()
store = Store(None)
app = create_app(store, training_key=TEST_KEY, response_observer=spec_checker.observe)


PROJECT_ID = store.create_project("fuzz", None, None, "Multilabel", ()).id
TAG_ID = store.create_tag(PROJECT_ID, "Dog", None, "Regular").id
# Alternate: half the cases use the project (and tag) that exist, half a random id.
_use_real_ids = itertools.cycle([True, False])


def _autorest_nullability(spec: dict[str, Any]) -> dict[str, Any]:
    """Let properties the spec leaves unannotated be null, as tests/support/spec_check.py reads
    them.

    AutoRest (which generated the official SDKs) treats an optional property without
    `x-nullable` as nullable, and the real service sends e.g. `"thumbnailUri": null` for a new
    project; schemathesis would read it as "never null". `x-nullable: false` stays enforced.
    """
    spec = copy.deepcopy(spec)
    for definition in spec.get("definitions", {}).values():
        for prop in definition.get("properties", {}).values():
            prop.setdefault("x-nullable", True)
    return spec


schema = schemathesis.openapi.from_dict(
    _autorest_nullability(json.loads(SPEC_FILE.read_text(encoding="utf-8")))
)
schema.app = app


@pytest.fixture(scope="module", autouse=True)
def _spec_checked() -> Any:
    yield
    if spec_checker.violations:
        pytest.fail(f"emulator responses broke the spec:\n{spec_checker.report()}", pytrace=False)


@schema.parametrize()
@hypothesis.settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
    database=None,
)
def test_no_5xx_and_every_response_matches_the_spec(case: Any) -> None:
    use_real_ids = next(_use_real_ids)
    if "projectId" in (case.path_parameters or {}):
        case.path_parameters["projectId"] = PROJECT_ID if use_real_ids else str(uuid.uuid4())
    if use_real_ids and "tagId" in (case.path_parameters or {}):
        case.path_parameters["tagId"] = TAG_ID
    # The right key always: a wrong one is APIM's 401, outside the spec
    # (tests/support/spec_check.py).
    case.headers = {**(case.headers or {}), "Training-Key": TEST_KEY}
    response = case.call()
    checks = [not_a_server_error, response_schema_conformance]
    if response.status_code < 400:
        # Error bodies are JSON for every operation (CustomVisionError), also for the export
        # download whose `produces` lists only application/octet-stream.
        checks.append(content_type_conformance)
    case.validate_response(response, checks=checks)
