"""The IATI activity schema 2.03, loaded offline, and the one XML parser every input goes through.

The three ``.xsd`` files are vendored in ``data/schemas/`` (the IATI Standard's, CC BY 4.0, see
``data/SOURCES.md``), so an installed ledger validates with no network and no checkout beside it.
They refer to each other by relative path only (``iati-common.xsd``, ``xml.xsd``); the resolver
below still refuses any other URL, so a changed file can never make validation fetch anything.

Every IATI document the ledger reads, its own or anyone's, is parsed by :func:`safe_parser`:
no DTD loaded, no entity substituted, no network, no huge text nodes. A file that declares a
DOCTYPE at all is refused (:mod:`services.iati.validate`), which covers entity expansion
("billion laughs"), external entities (XXE) and network DTDs alike.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Any

from lxml import etree

from services.iati.errors import IatiDataMissingError

__all__ = ["IATI_VERSION", "activity_schema", "data_path", "load_schema", "safe_parser"]

IATI_VERSION = "2.03"
"""The version of the standard the export writes and the validation reads."""

_SCHEMA = "iati-activities-schema.xsd"


def data_path(*parts: str) -> Path:
    """A file of the vendored IATI data (``data/`` beside this module).

    :raises IatiDataMissingError: naming the path when it is not there.
    """
    path = Path(str(resources.files("services.iati").joinpath("data", *parts)))
    if not path.is_file():
        raise IatiDataMissingError(
            f"{path} is missing: the IATI schema and codelists ship in services/iati/data/; "
            "reinstall the package, or copy them again from the IATI Standard (see "
            "services/iati/data/SOURCES.md)"
        )
    return path


class _LocalOnly(etree.Resolver):
    """Resolves the schema's own files, and refuses every URL that is not a local file."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self._folder = folder.resolve()

    def resolve(self, system_url: str | None, public_id: str | None, context: Any) -> Any:
        url = system_url or ""
        if url.startswith("file:"):
            url = url.removeprefix("file://").removeprefix("file:")
        elif "://" in url or url.startswith("//"):
            raise IatiDataMissingError(
                f"the IATI schema asked for {system_url!r}; only the vendored files are read"
            )
        target = (self._folder / Path(url).name).resolve()
        if target.parent != self._folder or not target.is_file():
            raise IatiDataMissingError(
                f"the IATI schema asked for {system_url!r}, which is not one of its files in "
                f"{self._folder}"
            )
        return self.resolve_filename(str(target), context)


def safe_parser(*, remove_blank_text: bool = False) -> etree.XMLParser:
    """A parser that loads no DTD, substitutes no entity, reads no network and keeps
    libxml2's limits on text size and depth (``huge_tree`` off)."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=remove_blank_text,
    )


def load_schema(main: Path) -> etree.XMLSchema:
    """An XML schema from a local file, with what it includes or imports read only from the
    files beside it: any other URL is refused.

    :raises IatiDataMissingError: naming a URL or file the schema asks for and may not have.
    """
    parser = safe_parser()
    parser.resolvers.add(_LocalOnly(main.parent))
    try:
        return etree.XMLSchema(etree.parse(str(main), parser))
    except etree.XMLSchemaParseError as exc:
        raise IatiDataMissingError(f"{main}: the schema cannot be loaded: {exc}") from None


@functools.cache
def activity_schema() -> etree.XMLSchema:
    """The IATI 2.03 activity schema, parsed once per process from the vendored files.

    :raises IatiDataMissingError: when a schema file is missing.
    """
    data_path("schemas", "iati-common.xsd")
    data_path("schemas", "xml.xsd")
    return load_schema(data_path("schemas", _SCHEMA))
