"""schemathesis (4.x API) against the app's own OpenAPI schema, in process (CPU): generated requests, valid
and invalid, within bounded examples, never get a 5xx, and every answer matches its documented status and
schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from deepmf.recommender import Recommender  # noqa: E402
from deepmf.service import create_app  # noqa: E402


@pytest.fixture(scope="module")
def api_schema(model_dirs: dict[str, Path]):
    # The Recommender is passed in, so the app answers without its lifespan: schemathesis' ASGI transport
    # opens a client per call.
    app = create_app(model_dirs["mf"], recommender=Recommender.load(model_dirs["mf"]))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


# Generated test functions with ``@given`` (schemathesis' own pytest integration, ``from_fixture``, reads a
# private pytest attribute that pytest 9 removed).
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_server_errors_and_documented_answers(api_schema, mode: GenerationMode) -> None:
    @given(case=api_schema.as_strategy(mode))
    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case) -> None:
        case.call_and_validate(checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                       response_schema_conformance])

    check()
