"""Schemathesis against the served `/openapi.json`: no 5xx, and every response fits the document.

Schemathesis generates bodies from the spec's schemas (valid ones and broken ones) and checks
each answer: not a server error, status code and content type documented, body valid against
the documented schema, requests without the API key refused with 401. Left out:
`positive_data_acceptance`, because a body can fit the schema and still break a rule
(`temperature: -1` is our documented 400), and `negative_data_rejection`, because the server
reads types as vLLM's pydantic models do: `"true"` for a boolean or `"5"` for an integer breaks
the schema and is accepted on purpose (tests/server/test_errors.py holds the bodies that must
be 422).

A second run goes against a server with tight input bounds (a 2 KB body cap, two entries per
capped list, a one-second preparation budget), so the refusals (413, 400 naming a cap) are
exercised too and must be documented answers of the right shape.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis")

from schemathesis.checks import negative_data_rejection, positive_data_acceptance  # noqa: E402

from pyengine_server.limits import RequestLimits  # noqa: E402
from pyengine_server.openapi import openapi_document  # noqa: E402
from tests.server.conftest import serve  # noqa: E402

KEY = "fuzz-key"
schema = schemathesis.openapi.from_dict(openapi_document(secured=True))


@pytest.fixture(scope="module")
def fuzz_server():
    with serve(api_key=KEY, max_n=4, max_pending_requests=64) as running:
        yield running


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms(case, fuzz_server):
    case.call_and_validate(base_url=fuzz_server.url, headers={"Authorization": f"Bearer {KEY}"},
                           excluded_checks=[positive_data_acceptance, negative_data_rejection], timeout=60)


@pytest.fixture(scope="module")
def bounded_server():
    limits = RequestLimits(messages=2, tools=2, stop=2, bad_words=2, logit_bias=2, allowed_token_ids=2)
    with serve(api_key=KEY, max_n=4, max_pending_requests=64, limits=limits, max_request_body_bytes=2048,
               prepare_timeout=1.0) as running:
        yield running


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_with_tight_input_bounds(case, bounded_server):
    case.call_and_validate(base_url=bounded_server.url, headers={"Authorization": f"Bearer {KEY}"},
                           excluded_checks=[positive_data_acceptance, negative_data_rejection], timeout=60)
