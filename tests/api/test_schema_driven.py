"""Every operation of the OpenAPI document, with requests generated from the document itself
by schemathesis (valid input, then invalid input), as an admin with every scope: never a 5xx,
and every successful response matches its documented schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from portal.api import tokens
from portal.extensions import db

EXAMPLES = 10


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_without_server_errors(app, world, mode):
    _row, text = tokens.create_token(world.admin, "schemathesis",
                                     tokens.allowed_scopes(world.admin), None)
    db.session.commit()
    headers = {"Authorization": f"Bearer {text}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15  # the walk really covers the API
    calls = {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        response = case.call(headers=headers)
        calls[case.operation.label] = calls.get(case.operation.label, 0) + 1
        case.validate_response(response, checks=[not_a_server_error])
        if mode == GenerationMode.POSITIVE and response.status_code < 300:
            case.validate_response(response, checks=[response_schema_conformance])

    for operation in operations:
        given(case=operation.as_strategy(generation_mode=mode))(run)()
        db.session.rollback()
    assert set(calls) == {op.label for op in operations}
