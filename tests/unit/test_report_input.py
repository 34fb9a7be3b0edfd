"""``ledger report``'s input: one activity as a line of an import file, either form."""

from __future__ import annotations

import json

import pytest

from events.errors import InvalidEventError
from services.cli.demo import DATASET
from services.client.importer import activity_from_json


def test_a_line_of_the_seed_dataset_is_a_report() -> None:
    # The seed's lines have one `source` (schema version 1), as `ledger report --help` says
    # its input may.
    line = DATASET.read_text(encoding="utf-8").splitlines()[0]
    given = json.loads(line)
    activity = activity_from_json(line.encode(), "line.json")
    assert activity.activity_id == given["activity_id"]
    assert [(s.document, s.paragraph) for s in activity.sources] == [
        (given["source"]["document"], given["source"]["paragraph"])
    ]


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        (b'{"activity_id": 5}', "activity_id", "Expected `str`"),
        (b"nope", "", "in.json is not a JSON object"),
        (b"\xff\xfe", "", "in.json is not UTF-8 text"),
    ],
)
def test_bad_input_names_the_field_and_what_is_wrong(data: bytes, field: str, words: str) -> None:
    with pytest.raises(InvalidEventError) as refused:
        activity_from_json(data, "in.json")
    issue = refused.value.issues[0]
    assert issue.field == field
    assert words in issue.message
