"""The no-consumer warning stays one readable line, however many nodes wait on the queue."""

from wfcelery.messaging.consumers import describe


def test_warning_names_every_node_of_a_small_workflow() -> None:
    assert describe({"gpu": ["train", "score"]}) == [
        "no live worker consumes queue 'gpu' (nodes train, score): they will wait until a worker runs"
        " with -Q gpu"
    ]


def test_warning_of_a_wide_fan_out_names_ten_nodes_and_counts_the_rest() -> None:
    [line] = describe({"bulk": [f"p{i}" for i in range(10_000)]})
    assert "(nodes p0, p1, p2, p3, p4, p5, p6, p7, p8, p9 and 9,990 more)" in line
    assert line.endswith("-Q bulk")
    assert len(line) < 200
