"""The first path end to end: create a topic, produce lines, consume them back."""


def test_create_produce_consume_round_trip(kcli):
    assert kcli("topic", "create", "orders", "--partitions", "3").returncode == 0
    lines = "".join(f"order-{i}\n" for i in range(100))
    r = kcli("produce", "orders", input=lines)
    assert r.returncode == 0, r.stderr
    r = kcli("consume", "orders", "--from-beginning")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.splitlines()) == sorted(f"order-{i}" for i in range(100))
