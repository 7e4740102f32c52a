"""Reading prompt files: every problem names the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from generation.prompt_files import PromptFileError, PromptRow, parse_prompt_file

OCCUPATIONS = Path(__file__).resolve().parents[2] / "prompts" / "occupations.csv"


def test_shipped_occupations_file_has_fifty_or_more_categorised_prompts():
    rows = parse_prompt_file(OCCUPATIONS.read_bytes(), OCCUPATIONS.name)
    assert len(rows) >= 50
    assert all(row.category for row in rows)
    assert any(row.category.startswith("occupation") for row in rows)
    assert any(row.category.startswith("everyday scene") for row in rows)


def test_csv_without_category_column_gives_empty_categories_and_tidies_whitespace():
    rows = parse_prompt_file(b"caption\n  a   doctor \nan astronaut\n", "p.csv")
    assert rows == [PromptRow("a doctor", ""), PromptRow("an astronaut", "")]


def test_jsonl_and_csv_read_the_same_rows():
    jsonl = b'{"caption": "a nurse", "category": "health"}\n\n{"caption": "a cook", "category": "food"}\n'
    csv_file = b"caption,category\na nurse,health\na cook,food\n"
    assert parse_prompt_file(jsonl, "p.jsonl") == parse_prompt_file(csv_file, "p.csv")


def test_a_repeated_prompt_is_refused_naming_both_lines():
    data = b"caption,category\na nurse,health\na cook,food\na  nurse ,health\n"
    with pytest.raises(PromptFileError, match=r"p.csv line 4: repeats line 2 \('a nurse', category 'health'\)"):
        parse_prompt_file(data, "p.csv")


def test_every_bad_line_is_reported_at_once():
    data = b"caption,category\n,x\na doctor,y\n,z\na doctor,y\n"
    with pytest.raises(PromptFileError) as refused:
        parse_prompt_file(data, "p.csv")
    message = str(refused.value)
    assert "p.csv line 2: 'caption' is empty" in message
    assert "p.csv line 4: 'caption' is empty" in message
    assert "p.csv line 5: repeats line 3" in message
    thirty_empty = b"caption\n" + b'""\n' * 30
    with pytest.raises(PromptFileError, match="and 10 more"):
        parse_prompt_file(thirty_empty, "p.csv")


def test_unicode_captions_survive():
    rows = parse_prompt_file("caption,category\nun médecin 👩‍⚕️,santé\n".encode(), "p.csv")
    assert rows == [PromptRow("un médecin 👩‍⚕️", "santé")]


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"text,category\na doctor,x\n", "p.csv", "missing required column 'caption' (found: text, category)"),
        (b"caption,category\na doctor,x\n,y\n", "p.csv", "p.csv line 3: 'caption' is empty"),
        (b"caption\na,b\n", "p.csv", "p.csv line 2: more fields than the header"),
        (b'{"caption": "a"}\n{"caption": \n', "p.jsonl", "p.jsonl line 2: not valid JSON"),
        (b'["a doctor"]\n', "p.jsonl", "p.jsonl line 1: expected an object"),
        (b'{"category": "x"}\n', "p.jsonl", "line 1: missing required field 'caption'"),
        (b'{"caption": "a", "category": 5}\n', "p.jsonl", "'category' must be text, not int"),
        (b"caption\n" + b"x" * 1001 + b"\n", "p.csv", "'caption' is 1001 characters; at most 1000"),
        (b"caption\n\xff\xfe\n", "p.csv", "p.csv line 2: not UTF-8 text"),
        (b"caption\n", "p.csv", "contains no prompts"),
        (b"caption\na\n", "p.txt", "unknown prompt file type"),
    ],
)
def test_bad_prompt_files_are_refused_with_the_place_of_the_problem(data, name, message):
    with pytest.raises(PromptFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_prompt_file(data, name)
