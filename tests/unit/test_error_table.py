"""The one error table: every error of the project has a row, and every edge answers by it.

The edges are driven through their public entry points where there is one (an HTTP request,
a NATS query's answer, ``exit_code_for``, ``rejection_for``), and each answer is compared both
with the table and with the literal answer the edges gave before there was a table.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from litestar import Litestar, Router, get
from litestar.params import FromPath
from litestar.testing import TestClient

from events import error_kinds
from events.decisions import rejection_for
from events.error_kinds import ErrorKind
from events.errors import (
    ActivityNotFoundError,
    ActivityWithdrawnError,
    Conflict,
    EventDecodeError,
    FieldIssue,
    InvalidEventError,
    LedgerError,
    StreamConfigError,
    TooManyReadersError,
    UnknownProgrammeError,
)
from projections.errors import BadParameterError, NotYetError, UnknownKeyError
from projections.schema import OutdatedSchemaError
from replay.archive_check import ArchiveRejectedError
from services import errors
from services.api.app import EXCEPTION_HANDLERS, HistoryUnavailableError
from services.api.auth import PublicBindError, TokenRequiredError
from services.api.dashboard.errors import ERROR_PAGES
from services.api.nats_queries import QueryService
from services.api.server import PortInUseError
from services.cli.exit_codes import ExitCode
from services.cli.main import KINDS, exit_code_for
from services.client.errors import ForbiddenError, IntakeUnavailableError, VersionConflict
from services.client.importer import BadImportFileError
from services.errors import ANSWERS, Page, row_for
from services.infra.credentials import CredentialsError
from services.infra.runtime import AlreadyRunningError
from services.infra.stack import ConnectionFailedError
from services.infra.violations import PermissionDeniedError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("events", "projections", "replay", "services")


def _project_modules() -> Iterator[str]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.stem == "__main__":  # a program, run rather than imported
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _project_errors() -> set[type[BaseException]]:
    """Every LedgerError subclass defined in the project's packages (not in the tests)."""
    for name in _project_modules():
        importlib.import_module(name)
    found = {LedgerError, *_subclasses(LedgerError)}
    return {cls for cls in found if cls.__module__.split(".")[0] in PACKAGES}


def test_every_error_of_the_project_has_a_row_of_its_own() -> None:
    found = _project_errors()

    assert len(found) > 30  # the walk found the modules
    missing = sorted(f"{cls.__module__}.{cls.__qualname__}" for cls in found - KINDS.keys())
    assert not missing, f"give these errors a kind (see services.errors): {missing}"


def test_each_error_has_its_row_in_the_lowest_table_that_may_import_it() -> None:
    # rejection_for, in events, reads only the events part; the API reads services.errors.
    found = _project_errors()
    in_events = {cls for cls in found if cls.__module__.startswith("events.")}
    below_rooms = {
        cls
        for cls in found
        if cls.__module__.startswith(("events.", "projections.", "replay.", "services.infra."))
    }

    assert in_events == error_kinds.KINDS.keys()
    assert below_rooms == errors.KINDS.keys() - {FileNotFoundError}
    assert error_kinds.KINDS.items() <= errors.KINDS.items() <= KINDS.items()


def test_every_kind_has_an_answer() -> None:
    assert ANSWERS.keys() == set(ErrorKind)


def test_a_subclass_without_a_row_is_answered_as_its_parent() -> None:
    class Narrower(UnknownKeyError):
        pass

    assert row_for(Narrower("country", "nope")) == row_for(UnknownKeyError("country", "nope"))
    assert row_for(HistoryUnavailableError("no NATS")) == row_for(NotYetError("no NATS"))


class Expected(NamedTuple):
    reply: str | None
    """Intake's reply code; None for an error that is not the ledger's."""
    code: str
    status: int
    exit: ExitCode
    page: Page


def _internal(exit: ExitCode) -> Expected:
    return Expected("unavailable", "internal", 500, exit, Page.FAILED)


SAMPLES: list[tuple[BaseException, Expected]] = [
    (
        InvalidEventError([FieldIssue("year", "too early")]),
        Expected("invalid", "internal", 500, ExitCode.INVALID, Page.FAILED),
    ),
    (
        UnknownProgrammeError("NOPE"),
        Expected("invalid", "internal", 500, ExitCode.INVALID, Page.FAILED),
    ),
    (
        BadImportFileError(Path("a.csv"), "empty"),
        Expected("invalid", "internal", 500, ExitCode.INVALID, Page.FAILED),
    ),
    (
        ActivityNotFoundError("A-1"),
        Expected("unknown_activity", "unknown", 404, ExitCode.NOT_FOUND, Page.NOT_FOUND),
    ),
    (
        ActivityWithdrawnError("A-1"),
        Expected("withdrawn", "internal", 500, ExitCode.REFUSED, Page.FAILED),
    ),
    (Conflict("A-1", 3, 4), _internal(ExitCode.CONFLICT)),
    (VersionConflict("A-1", "changed", 2, 9), _internal(ExitCode.CONFLICT)),
    (EventDecodeError("not an event", 7), _internal(ExitCode.INVALID)),
    (StreamConfigError("deletes are allowed"), _internal(ExitCode.REFUSED)),
    (TooManyReadersError("LEDGER"), _internal(ExitCode.NOT_RUNNING)),
    (
        BadParameterError("year", "out of range"),
        Expected("unavailable", "invalid", 400, ExitCode.INVALID, Page.CANNOT_SHOW),
    ),
    (
        UnknownKeyError("country", "unknown country"),
        Expected("unavailable", "unknown", 404, ExitCode.NOT_FOUND, Page.NOT_FOUND),
    ),
    (
        NotYetError("not there yet", 5),
        Expected("unavailable", "unavailable", 503, ExitCode.FAILED, Page.NOT_READY),
    ),
    (
        HistoryUnavailableError("no NATS connection"),
        Expected("unavailable", "unavailable", 503, ExitCode.FAILED, Page.NOT_READY),
    ),
    (OutdatedSchemaError("rebuild it"), _internal(ExitCode.FAILED)),
    (ArchiveRejectedError("a.jsonl", 3, "type", "unknown"), _internal(ExitCode.INVALID)),
    (ForbiddenError("another office's"), _internal(ExitCode.REFUSED)),
    (PermissionDeniedError("Publish", "ledger.x"), _internal(ExitCode.REFUSED)),
    (IntakeUnavailableError("no answer"), _internal(ExitCode.NOT_RUNNING)),
    (AlreadyRunningError(Path("data"), None), _internal(ExitCode.NOT_RUNNING)),
    (CredentialsError("no seed"), _internal(ExitCode.INVALID)),
    (ConnectionFailedError("no NATS"), _internal(ExitCode.UNREACHABLE)),
    (TokenRequiredError("no token"), _internal(ExitCode.INSECURE)),
    (PublicBindError("not loopback"), _internal(ExitCode.USAGE)),
    (PortInUseError("in use"), _internal(ExitCode.FAILED)),
    (LedgerError("something"), _internal(ExitCode.FAILED)),
    (
        FileNotFoundError("no such file"),
        Expected(None, "internal", 500, ExitCode.NOT_FOUND, Page.FAILED),
    ),
    (RuntimeError("a bug"), Expected(None, "internal", 500, ExitCode.FAILED, Page.FAILED)),
]
BY_NAME = {type(error).__name__: error for error, _ in SAMPLES}
CASES = [pytest.param(error, expected, id=type(error).__name__) for error, expected in SAMPLES]
LEDGER_CASES = [case for case in CASES if isinstance(case.values[0], LedgerError)]


@get("/api/{name:str}", sync_to_thread=False)
def _api_raises(name: FromPath[str]) -> None:
    raise BY_NAME[name]


@get("/page/{name:str}", sync_to_thread=False)
def _page_raises(name: FromPath[str]) -> None:
    raise BY_NAME[name]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    # As in create_app: the API's handlers on the app, the dashboard's on its router.
    app = Litestar(
        route_handlers=[
            _api_raises,
            Router("/", route_handlers=[_page_raises], exception_handlers=ERROR_PAGES),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    with TestClient(app=app) as test_client:
        yield test_client


class _Raising:
    """A read model whose every query raises the given error."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def query(self, *_: object) -> None:
        raise self.error


def test_the_samples_are_one_of_a_class() -> None:
    assert len(BY_NAME) == len(SAMPLES)


@pytest.mark.parametrize(("error", "expected"), CASES)
def test_the_table_says_what_the_edges_did_before_it(
    error: BaseException, expected: Expected
) -> None:
    row = row_for(error, KINDS)

    reply = row.reply if isinstance(error, LedgerError) else None
    assert Expected(reply, row.code, row.status, row.exit, row.page) == expected


@pytest.mark.parametrize(("error", "expected"), CASES)
def test_the_http_api_answers_by_the_table(
    client: TestClient, error: BaseException, expected: Expected
) -> None:
    response = client.get(f"/api/{type(error).__name__}")

    assert (response.status_code, response.json()["code"]) == (expected.status, expected.code)
    assert response.headers.get("Retry-After") == ("1" if expected.status == 503 else None)


@pytest.mark.parametrize(("error", "expected"), CASES)
def test_the_dashboard_answers_by_the_table(
    client: TestClient, error: BaseException, expected: Expected
) -> None:
    response = client.get(f"/page/{type(error).__name__}")

    assert response.status_code == expected.status
    assert response.headers["content-type"].startswith("text/html")
    assert f"<h1>{expected.page.title}</h1>" in response.text
    assert response.headers.get("Retry-After") == ("1" if expected.status == 503 else None)


@pytest.mark.parametrize(("error", "expected"), CASES)
async def test_the_nats_queries_answer_by_the_table(
    error: BaseException, expected: Expected
) -> None:
    service = QueryService(_Raising(error))  # type: ignore[arg-type]

    _, code = await service.answer("countries", b"")

    assert code == expected.code


@pytest.mark.parametrize(("error", "expected"), CASES)
def test_the_cli_exits_by_the_table(error: BaseException, expected: Expected) -> None:
    assert exit_code_for(error) == expected.exit


@pytest.mark.parametrize(("error", "expected"), LEDGER_CASES)
def test_intake_replies_by_the_table(error: LedgerError, expected: Expected) -> None:
    assert rejection_for(error).code == expected.reply
