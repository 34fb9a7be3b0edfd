#!/usr/bin/env python3
"""Generate events/reference/countries.json from pycountry.

One entry per ISO 3166-1 alpha-3 code. "name" is the United Nations short
name where the UN uses a different form than ISO; "aliases" collects the ISO
name, ISO official name, ISO common name, ASCII-folded spellings and other
common spellings. Aliases are unique (case-insensitively) across countries and
never repeat a country's own name.

Usage: python tools/make_countries.py [output_path]
"""

from __future__ import annotations

import json
import sys
import unicodedata
from pathlib import Path

import pycountry

# UN short names that differ from the ISO 3166 short name.
UN_NAMES: dict[str, str] = {
    "BOL": "Bolivia (Plurinational State of)",
    "COD": "Democratic Republic of the Congo",
    "FSM": "Micronesia (Federated States of)",
    "GBR": "United Kingdom of Great Britain and Northern Ireland",
    "HKG": "China, Hong Kong Special Administrative Region",
    "IRN": "Iran (Islamic Republic of)",
    "KOR": "Republic of Korea",
    "MAC": "China, Macao Special Administrative Region",
    "MDA": "Republic of Moldova",
    "PRK": "Democratic People's Republic of Korea",
    "PSE": "State of Palestine",
    "SHN": "Saint Helena",
    "TWN": "Taiwan Province of China",
    "TZA": "United Republic of Tanzania",
    "USA": "United States of America",
    "VAT": "Holy See",
    "VEN": "Venezuela (Bolivarian Republic of)",
    "VGB": "British Virgin Islands",
    "VIR": "United States Virgin Islands",
    # Already equal in pycountry 26.x, pinned for stability across versions.
    "CIV": "Côte d'Ivoire",
    "CPV": "Cabo Verde",
    "CZE": "Czechia",
    "LAO": "Lao People's Democratic Republic",
    "MKD": "North Macedonia",
    "RUS": "Russian Federation",
    "SWZ": "Eswatini",
    "SYR": "Syrian Arab Republic",
    "TUR": "Türkiye",
    "VNM": "Viet Nam",
}

# Other spellings a field officer or a UN document might use.
EXTRA_ALIASES: dict[str, list[str]] = {
    "ARE": ["UAE"],
    "BHS": ["The Bahamas"],
    "BIH": ["Bosnia"],
    "BOL": ["Bolivia"],
    "BRN": ["Brunei"],
    "CIV": ["Cote d'Ivoire", "Ivory Coast"],
    "COD": ["DR Congo", "DRC", "Democratic Republic of Congo", "Congo-Kinshasa"],
    "COG": ["Republic of Congo", "Congo-Brazzaville"],
    "CPV": ["Cape Verde"],
    "CZE": ["Czech Republic"],
    "FSM": ["Micronesia"],
    "GBR": ["United Kingdom", "UK", "U.K.", "Great Britain", "Britain"],
    "GMB": ["The Gambia"],
    "HKG": ["Hong Kong SAR"],
    "IRN": ["Iran"],
    "KNA": ["St. Kitts and Nevis", "Saint Kitts & Nevis"],
    "KOR": ["South Korea"],
    "LAO": ["Laos", "Lao PDR"],
    "LCA": ["St. Lucia"],
    "MAC": ["Macau", "Macao SAR"],
    "MDA": ["Moldova"],
    "MKD": ["Macedonia", "The former Yugoslav Republic of Macedonia", "FYROM"],
    "MMR": ["Burma"],
    "NLD": ["The Netherlands", "Holland", "Netherlands (Kingdom of the)"],
    "PRK": ["North Korea", "DPRK"],
    "PSE": ["Palestine", "Occupied Palestinian Territory"],
    "RUS": ["Russia"],
    "STP": ["São Tomé and Príncipe"],
    "SWZ": ["Swaziland", "Kingdom of Swaziland"],
    "SYR": ["Syria"],
    "TLS": ["East Timor"],
    "TUR": ["Turkey", "Republic of Turkey"],
    "TWN": ["Taiwan"],
    "TZA": ["Tanzania"],
    "USA": ["United States", "USA", "US", "U.S.", "U.S.A."],
    "VAT": ["Vatican", "Vatican City"],
    "VCT": ["St. Vincent and the Grenadines"],
    "VEN": ["Venezuela"],
    "VGB": ["Virgin Islands (British)"],
    "VIR": ["US Virgin Islands", "Virgin Islands (U.S.)"],
    "VNM": ["Vietnam"],
}


def ascii_fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def variants(text: str) -> list[str]:
    """The text itself, its ASCII fold and straight/curly apostrophe forms."""
    out = [text, ascii_fold(text)]
    for item in list(out):
        if "'" in item:
            out.append(item.replace("'", "\u2019"))
        if "\u2019" in item:
            out.append(item.replace("\u2019", "'"))
    return out


def build() -> list[dict]:
    entries = []
    for country in pycountry.countries:
        code = country.alpha_3
        name = UN_NAMES.get(code, country.name)
        candidates: list[str] = []
        for attr in ("name", "official_name", "common_name"):
            value = getattr(country, attr, None)
            if value:
                candidates.extend(variants(value))
        for alias in EXTRA_ALIASES.get(code, []):
            candidates.extend(variants(alias))
        candidates.extend(variants(name))
        seen = {name.casefold()}
        aliases = []
        for alias in candidates:
            alias = alias.strip()
            if alias and alias.casefold() not in seen:
                seen.add(alias.casefold())
                aliases.append(alias)
        entries.append({"code": code, "name": name, "aliases": sorted(aliases)})
    entries.sort(key=lambda e: e["code"])
    check_unique(entries)
    return entries


def check_unique(entries: list[dict]) -> None:
    owner: dict[str, str] = {}
    for entry in entries:
        for label in [entry["name"], *entry["aliases"]]:
            key = label.casefold()
            if key in owner and owner[key] != entry["code"]:
                raise SystemExit(f"label {label!r} used by both {owner[key]} and {entry['code']}")
            owner[key] = entry["code"]


def dump(entries: list[dict]) -> str:
    lines = [json.dumps(entry, ensure_ascii=False) for entry in entries]
    return "[\n" + ",\n".join(lines) + "\n]\n"


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    default = root / "events" / "reference" / "countries.json"
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    entries = build()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dump(entries), encoding="utf-8")
    print(f"wrote {len(entries)} countries to {out}")


if __name__ == "__main__":
    main()
