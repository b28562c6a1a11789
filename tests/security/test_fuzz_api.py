"""Fuzzing the JSON API from its OpenAPI schema (schemathesis), on a running stack.

Every operation of ``/api/schema/`` is called with requests generated from
the schema, with a Bearer token of a radiologist: no answer may be a server
error, and every answer must conform to the schema (status code, content
type, body, headers). Generated study UIDs name no study, so each case is
also sent with the UID of a real indexed study, to reach past the access
helpers into the report code. Budget: tests/support/fuzzing.py.
"""

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import given
from schemathesis.specs.openapi.checks import positive_data_acceptance

from conftest import SHARED_DATA
from tests.e2e.test_bad_input import storescu
from tests.support.fuzzing import examples
from tests.support.ris import RisListener
from tests.support.stack import Stack, running_stack, wait_for

pytestmark = pytest.mark.e2e

CT_SMALL = SHARED_DATA / "pydicom" / "CT_small.dcm"
EXAMPLES_PER_OPERATION = 15


@pytest.fixture(scope="module")
def api_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with (
        RisListener() as ris,
        running_stack(tmp_path_factory.mktemp("api-fuzz"), ris.port) as stack,
    ):
        yield stack


@pytest.fixture(scope="module")
def study_uid(api_stack: Stack) -> str:
    assert storescu(api_stack, api_stack.ae_title, CT_SMALL).returncode == 0
    rows = wait_for(
        lambda: api_stack.sql("SELECT study_instance_uid FROM pacs_study"),
        what="CT_small indexed",
    )
    return str(rows[0][0])


@pytest.fixture(scope="module")
def api_schema(api_stack: Stack) -> schemathesis.BaseSchema:
    # The stack's tenant answers on 127.0.0.1 too: requests cannot resolve
    # *.localhost names.
    base = f"http://127.0.0.1:{api_stack.web_port}"
    schema = schemathesis.openapi.from_url(
        f"{base}/api/schema/", headers=bearer(api_stack)
    )
    schema.config.update(base_url=base)
    return schema


# A body the schema allows may still be refused for the report's state (a
# critical finding flagged on a draft) or for a NUL character: those 400s
# are documented, so acceptance of every schema-valid body is not asked.
EXCLUDED_CHECKS = [positive_data_acceptance]


def bearer(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token}"}


def test_no_operation_answers_a_server_error_or_leaves_its_schema(
    api_schema, api_stack, study_uid
):
    # Hypothesis over each operation's strategy, not schemathesis's pytest
    # plugin: its lazy fixture loading fails on pytest 9 (no Function._nodeid).
    failures = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @examples(EXAMPLES_PER_OPERATION)
        @given(case=operation.as_strategy())
        def call(case):  # type: ignore[no-untyped-def]
            case.call_and_validate(
                headers=bearer(api_stack), excluded_checks=EXCLUDED_CHECKS
            )

            if "study_uid" in (case.path_parameters or {}):
                case.path_parameters["study_uid"] = study_uid
                case.call_and_validate(
                    headers=bearer(api_stack), excluded_checks=EXCLUDED_CHECKS
                )

        try:
            call()
        except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001 - every operation is reported
            failures.append(f"{operation.method} {operation.path}: {error}")
    assert not failures, "\n".join(failures)


def test_the_schema_lists_the_report_operations(api_schema):
    paths = {result.ok().path for result in api_schema.get_all_operations()}

    assert "/api/studies/{study_uid}/report" in paths
