from pliuz import idempotency_key


def test_key_is_deterministic_and_order_insensitive() -> None:
    a = idempotency_key("t", {"a": 1, "b": [1, 2]}, session_id="s", call_id="c", secret="k")
    b = idempotency_key("t", {"b": [1, 2], "a": 1}, session_id="s", call_id="c", secret="k")
    assert a == b
    assert a.startswith("pz1_") and len(a) <= 200


def test_key_changes_with_every_input() -> None:
    base = {"session_id": "s", "call_id": "c", "secret": "k"}
    k = idempotency_key("t", {"a": 1}, **base)
    assert k != idempotency_key("u", {"a": 1}, **base)
    assert k != idempotency_key("t", {"a": 2}, **base)
    assert k != idempotency_key("t", {"a": 1}, **{**base, "session_id": "s2"})
    assert k != idempotency_key("t", {"a": 1}, **{**base, "call_id": "c2"})
    assert k != idempotency_key("t", {"a": 1}, **{**base, "secret": "k2"})


def test_key_does_not_contain_argument_values() -> None:
    k = idempotency_key("t", {"card": "4111111111111111"}, secret="k")
    assert "4111" not in k
