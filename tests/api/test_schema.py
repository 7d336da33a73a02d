"""schemathesis against the app's own OpenAPI schema: no request it can make is a 5xx.

Every operation, with generated parameters (valid and not), over the real store.
The example count is kept small so that the suite stays quick. The schema is read
from the app when this module is imported; the app opens the store (the session's,
see conftest) at its first query.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from sinks.lake import Store, open_reader
from yieldstream.api import create_app
from yieldstream.api.store import Readers
from yieldstream.settings import ApiSettings, Settings

_STORE: dict[str, Path] = {}
# No rate limit in the way, and every query well within its deadline.
API = ApiSettings(rate_limit="100000/minute", query_timeout_s=30)
READERS = Readers(lambda: open_reader(Store(_STORE["dir"])), size=2, timeout_s=30)
APP = create_app(Settings(api=API), READERS)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(autouse=True)
def _the_store(store_dir: Path) -> Iterator[None]:
    _STORE["dir"] = store_dir
    yield
    READERS.close()


# One test per operation, named by it: schemathesis's own ``schema.parametrize()``
# gives every operation the same test id, and pytest-xdist runs only one test of an id.
OPERATIONS = [result.ok() for result in schema.get_all_operations()]


@pytest.mark.slow
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_no_server_error(operation: Any) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def no_server_error(case: Any) -> None:
        case.call_and_validate(checks=[not_a_server_error])

    no_server_error()
