"""Text building, hashing and the dead-letter verdicts of :mod:`connector.texts`."""

from __future__ import annotations

import hashlib
import pickle

import pytest

from connector.errors import ConfigError
from connector.texts import TextPolicy, UnembeddableDocument, build_text, template_fields, text_hash

POLICY = TextPolicy(fields=("title", "description"))


def test_fields_are_joined_with_newlines_skipping_empty_ones() -> None:
    assert build_text({"title": " Red shoe ", "description": "Leather"}, POLICY) == "Red shoe\nLeather"
    assert build_text({"title": "Red shoe", "description": ""}, POLICY) == "Red shoe"
    assert build_text({"title": "Red shoe"}, POLICY) == "Red shoe"


def test_template_renders_fields_and_literal_braces() -> None:
    policy = TextPolicy(fields=("title", "brand"), template="{brand}: {title} {{x}}")
    assert build_text({"title": "Shoe", "brand": "Acme"}, policy) == "Acme: Shoe {x}"
    assert build_text({"title": "Shoe"}, policy) == ": Shoe {x}"


def test_dotted_fields_and_lists() -> None:
    policy = TextPolicy(fields=("product.name", "tags"))
    assert build_text({"product": {"name": "Lamp"}, "tags": ["desk", "led"]}, policy) == "Lamp\ndesk led"
    assert build_text({"product.name": "Lamp"}, policy) == "Lamp"


@pytest.mark.parametrize(
    ("source", "code", "words"),
    [
        ({}, "missing_text", "none of the fields"),
        ({"title": None}, "missing_text", "none of the fields"),
        ({"title": "   ", "description": "\n"}, "empty_text", "empty or blank"),
        ({"title": 42}, "wrong_type", "holds a int"),
        ({"title": {"en": "x"}}, "wrong_type", "holds a dict"),
        ({"title": ["a", 3]}, "wrong_type", "list of int, str"),
        ({"title": "bad \ud800 text"}, "invalid_utf8", "lone surrogate"),
        ({"title": "x" * 40}, "text_too_long", "40 characters"),
    ],
)
def test_unembeddable_documents_say_why(source: dict[str, object], code: str, words: str) -> None:
    policy = TextPolicy(fields=("title", "description"), max_text_chars=30)
    with pytest.raises(UnembeddableDocument) as err:
        build_text(source, policy)
    assert err.value.reason_code == code
    assert words in err.value.reason
    again = pickle.loads(pickle.dumps(err.value))
    assert again.reason_code == code and again.reason == err.value.reason


def test_text_hash_is_sha256_of_utf8() -> None:
    assert text_hash("Café") == hashlib.sha256("Café".encode()).hexdigest()
    assert text_hash("a") != text_hash("a ")


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{title", "unmatched brace"),
        ("{title} {}", "empty placeholder"),
        ("{title} {price}", "not in --fields"),
        ("no fields", "names no field"),
    ],
)
def test_bad_templates_are_config_errors(template: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TextPolicy(fields=("title",), template=template)


def test_policy_needs_fields() -> None:
    with pytest.raises(ConfigError, match="--fields"):
        TextPolicy(fields=())


def test_template_fields_in_order() -> None:
    assert template_fields("{b}\n{a} {b} {{c}}") == ["b", "a"]
