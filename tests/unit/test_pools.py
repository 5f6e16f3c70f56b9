"""Pools as data: the setting and rates parsed once, bad values refused naming them; a node's pool in the
model, YAML and the schema; the pool keys pinned; pooled nodes published alone under the canvas executor."""

from __future__ import annotations

import pytest
from celery import Celery

from wfcelery import ConfigurationError, PoolError, Workflow
from wfcelery.definition.loader import from_data, loads
from wfcelery.definition.pools import Rate, parse_pools, parse_rate
from wfcelery.definition.schema import definition_schema
from wfcelery.plan.compiler import compile_workflow
from wfcelery.plan.segments import carries
from wfcelery.settings import Settings
from wfcelery.tracker.keys import Keys


def test_rates_and_their_burst() -> None:
    assert parse_rate("10/s", "x") == Rate(10, "s")
    assert parse_rate(" 60 / m ", "x").per_second == 1.0
    assert parse_rate("500/h", "x").burst == 1
    assert parse_rate("10/s", "x").burst == 1  # 0.1 s worth of starts, at least one
    assert parse_rate("600/s", "x").burst == 60
    assert str(parse_rate("2.5/s", "x")) == "2.5/s"


@pytest.mark.parametrize("bad", ["5/fortnight", "10", "0/s", "-1/s", "ten/s", "", None, 5])
def test_a_malformed_rate_is_refused_naming_it(bad: object) -> None:
    with pytest.raises(PoolError, match=f"llm: malformed rate {bad!r}"):
        parse_rate(bad, "llm")


def test_the_setting() -> None:
    pools = parse_pools({"db": 5, "llm": {"slots": 20, "rate": "60/m"}, "api": {"rate": "10/s"}})
    assert (pools["db"].slots, pools["db"].rate) == (5, None)
    assert (pools["llm"].slots, str(pools["llm"].rate)) == (20, "60/m")
    assert (pools["api"].slots, str(pools["api"].rate)) == (None, "10/s")
    assert parse_pools(None) == {}


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({"db": 0}, "wfcelery_pools['db']: slots must be a whole number >= 1, got 0"),
        ({"db": True}, "wfcelery_pools['db']: give a number of slots"),
        ({"db": {"slots": 2, "burst": 3}}, "give a number of slots"),
        ({"llm": {"rate": "5/fortnight"}}, "malformed rate '5/fortnight'"),
        ({"a|b": 1}, "bad pool name 'a|b'"),
        ([1], "must be a dict"),
    ],
)
def test_a_bad_setting_is_a_configuration_error_naming_it(value: object, named: str) -> None:
    app = Celery(set_as_current=False)
    app.conf.update(wfcelery_redis_url="redis://localhost:6379/0", wfcelery_pools=value)
    with pytest.raises(ConfigurationError, match=named.replace("[", r"\[").replace("]", r"\]")):
        Settings.from_app(app)


def test_a_nodes_pool_in_python_yaml_and_the_schema() -> None:
    wf = Workflow("etl")
    wf.add("load", "shop.load", pool="db", priority=3)
    assert wf.to_dict()["tasks"][0]["pool"] == "db"
    loaded = from_data(loads("name: etl\ntasks:\n  - {name: load, task: shop.load, pool: db}\n"))
    assert loaded.nodes["load"].pool == "db"
    plan = compile_workflow(loaded)
    assert plan.pools == {"db"}
    assert plan.nodes[0].pool == "db"
    assert not carries(plan.nodes[0])  # a canvas cannot wait for a slot: published alone
    schema = definition_schema()
    options = schema["$defs"]["task"]["properties"] if "$defs" in schema else {}
    assert "pool" in str(schema)
    assert options == {} or options["pool"]["type"] == "string"
    with pytest.raises(PoolError, match="node 'x': pool: bad pool name 'no pe'"):
        Workflow("w").add("x", "t", pool="no pe")


def test_pool_keys_share_the_pools_tag_never_a_runs() -> None:
    keys = Keys("wfcelery")
    assert keys.pool_keys("db") == [
        "wfcelery:pool:{db}",
        "wfcelery:pool:{db}:held",
        "wfcelery:pool:{db}:waiting",
    ]
    assert keys.pools == "wfcelery:pools"
    assert keys.pools_lease == "wfcelery:pools:lease"
