"""The IATI codelists the ledger writes and checks, read from the vendored files.

Each codelist is a set of codes with a status; a withdrawn code is refused for new data, as
the standard asks (NOTES.md: Sector has 30 withdrawn codes, Currency 9, Country 1). The files are
the IATI Standard's (CC BY 4.0, ``data/SOURCES.md``); :data:`CHECKED` says which attribute of
which element each one governs.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from lxml import etree

from services.iati.schema import data_path, safe_parser

__all__ = ["CHECKED", "Codelist", "alpha2_of", "alpha3_of", "codelist"]


@dataclass(frozen=True)
class Codelist:
    """One codelist: its active codes and its withdrawn ones."""

    name: str
    active: frozenset[str]
    withdrawn: frozenset[str]

    def problem(self, code: str) -> str | None:
        """Why ``code`` may not be used; ``None`` when it may."""
        if code in self.active:
            return None
        if code in self.withdrawn:
            return f"{code!r} is withdrawn from the {self.name} codelist; use a current code"
        return f"{code!r} is not in the {self.name} codelist"


@functools.cache
def codelist(name: str) -> Codelist:
    """The codelist ``name`` (e.g. ``Sector``), read once per process.

    :raises IatiDataMissingError: when its file is missing.
    """
    tree = etree.parse(str(data_path("codelists", f"{name}.xml")), safe_parser())
    active: set[str] = set()
    withdrawn: set[str] = set()
    for item in tree.iter("codelist-item"):
        code = (item.findtext("code") or "").strip()
        (withdrawn if item.get("status") == "withdrawn" else active).add(code)
    return Codelist(name, frozenset(active), frozenset(withdrawn))


CHECKED: dict[tuple[str, str], str] = {
    # (element, attribute): codelist. Vocabulary-dependent codes (sector, indicator
    # reference) are checked by rules.py, which knows the vocabulary.
    ("iati-activity", "{http://www.w3.org/XML/1998/namespace}lang"): "Language",
    ("iati-activity", "default-currency"): "Currency",
    ("reporting-org", "type"): "OrganisationType",
    ("participating-org", "role"): "OrganisationRole",
    ("participating-org", "type"): "OrganisationType",
    ("activity-status", "code"): "ActivityStatus",
    ("activity-date", "type"): "ActivityDateType",
    ("recipient-country", "code"): "Country",
    ("recipient-region", "vocabulary"): "RegionVocabulary",
    ("sector", "vocabulary"): "SectorVocabulary",
    ("description", "type"): "DescriptionType",
    ("result", "type"): "ResultType",
    ("indicator", "measure"): "IndicatorMeasure",
    ("reference", "vocabulary"): "IndicatorVocabulary",
    ("narrative", "{http://www.w3.org/XML/1998/namespace}lang"): "Language",
    ("iati-activities", "version"): "Version",
}
"""Which codelist each coded attribute takes its values from."""


@functools.cache
def _alpha2() -> dict[str, str]:
    table: dict[str, str] = json.loads(data_path("alpha2.json").read_text("utf-8"))
    return table


def alpha2_of(alpha3: str) -> str | None:
    """The ISO 3166-1 alpha-2 code IATI uses for a ledger country (alpha-3); ``None`` if none."""
    return _alpha2().get(alpha3)


def alpha3_of(alpha2: str) -> str | None:
    """The ledger's alpha-3 code of an IATI country code; ``None`` when the ledger has none."""
    return _alpha3().get(alpha2.upper())


@functools.cache
def _alpha3() -> dict[str, str]:
    return {two: three for three, two in _alpha2().items()}
