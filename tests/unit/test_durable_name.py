"""The durable consumer's name comes from the environment: refused clearly when the server
would refuse it."""

from __future__ import annotations

import socket

import pytest

from services.cli.main import exit_code_for
from services.errors import ExitCode
from services.projector.service import DURABLE, DurableNameError, durable_name


def test_without_the_variable_it_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGER_PROJECTOR_DURABLE", raising=False)
    assert durable_name() == DURABLE


def test_hostname_stands_for_the_machine_with_its_dots_as_hyphens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEDGER_PROJECTOR_DURABLE", "reader-{hostname}")
    monkeypatch.setattr(socket, "gethostname", lambda: "api-2.example")
    assert durable_name() == "reader-api-2-example"


@pytest.mark.parametrize("given", ["bad*name", "two words", "all>", "a/b", "x" * 256])
def test_a_name_the_server_refuses_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.setenv("LEDGER_PROJECTOR_DURABLE", given)
    with pytest.raises(DurableNameError) as caught:
        durable_name()
    assert "LEDGER_PROJECTOR_DURABLE=" in str(caught.value)
    assert "letters, digits" in str(caught.value)
    assert exit_code_for(caught.value) == ExitCode.INVALID
