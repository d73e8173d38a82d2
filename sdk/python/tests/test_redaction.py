import pytest

from pliuz import REDACTED, PliuzArgumentsError
from pliuz.redaction import WILD, parse_path, redact, relax_schema, restore


def test_parse_path() -> None:
    assert parse_path("card.number") == ("card", "number")
    assert parse_path("items[*].ssn") == ("items", WILD, "ssn")
    assert parse_path("a[0][*]") == ("a", 0, WILD)
    for bad in ["", ".a", "a.", "a..b", "a[x]", "a]b"]:
        with pytest.raises(ValueError):
            parse_path(bad)


def test_redact_masks_values_and_keeps_input_intact() -> None:
    args = {
        "card": {"number": "4111111111111111", "exp": "12/30"},
        "items": [{"ssn": "111", "name": "a"}, {"ssn": "222", "name": "b"}, {"name": "c"}],
        "amount": 5,
    }
    r = redact(args, ["card.number", "items[*].ssn", "missing.path"])
    assert r.args["card"] == {"number": REDACTED, "exp": "12/30"}
    assert [i.get("ssn") for i in r.args["items"]] == [REDACTED, REDACTED, None]
    assert args["card"]["number"] == "4111111111111111"  # input untouched
    assert r.paths == ["card.number", "items[0].ssn", "items[1].ssn"]
    assert "4111" not in repr(r.args) and "111'" not in repr(r.args)


def test_restore_local_original_wins_and_edits_are_kept() -> None:
    args = {"card": {"number": "4111", "exp": "12/30"}, "items": [{"ssn": "1", "q": 1}]}
    r = redact(args, ["card.number", "items[*].ssn"])
    edited = {"card": {"number": "9999", "exp": "01/31"}, "items": [{"ssn": REDACTED, "q": 7}]}
    out = restore(edited, r)
    assert out == {"card": {"number": "4111", "exp": "01/31"}, "items": [{"ssn": "1", "q": 7}]}


def test_restore_refuses_when_a_placeholder_cannot_be_restored() -> None:
    r = redact({"items": [{"ssn": "1"}]}, ["items[*].ssn"])
    with pytest.raises(PliuzArgumentsError):
        restore({"items": [{"ssn": REDACTED}, {"ssn": REDACTED}]}, r)
    with pytest.raises(PliuzArgumentsError):
        restore({"items": []}, r)


def test_restore_recreates_a_removed_field() -> None:
    r = redact({"card": {"number": "4111"}, "x": 1}, ["card.number"])
    assert restore({"x": 2, "card": {}}, r) == {"x": 2, "card": {"number": "4111"}}
    assert restore({"x": 2}, r) == {"x": 2, "card": {"number": "4111"}}


def test_relax_schema_accepts_anything_at_redacted_paths() -> None:
    schema = {
        "type": "object",
        "properties": {
            "ssn": {"type": "integer"},
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
        },
        "$defs": {"Item": {"type": "object", "properties": {"pin": {"type": "integer"}}}},
    }
    out = relax_schema(schema, [parse_path("ssn"), parse_path("items[*].pin")])
    assert out is not None
    assert "type" not in out["properties"]["ssn"]
    assert "type" not in out["properties"]["items"]["items"]["properties"]["pin"]
    assert schema["properties"]["ssn"] == {"type": "integer"}  # not mutated
