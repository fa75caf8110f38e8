"""Concurrent requests share model calls (service.inference.Coalescer), each answered with its
own rows as if alone."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from service.inference import Answer, Coalescer


class Model:
    """A predictor that answers each row with its value (and the value's class) and records
    the size of every call."""

    def __init__(self, fail: bool = False, refuses: int | None = None) -> None:
        self.calls: list[int] = []
        self.fail = fail
        self.refuses = refuses  # a row value the model cannot take

    def __call__(self, columns, issue_ids: bool = True) -> Answer:
        self.calls.append(len(columns[0]))
        if self.fail:
            raise RuntimeError("the model broke")
        if self.refuses in columns[0]:
            raise ValueError(f"cannot take {self.refuses}")
        values = [float(v) for v in columns[0]]
        probabilities = np.array([[1 - v / 100, v / 100] for v in values])
        return Answer([f"c{int(v)}" for v in values], values, probabilities,
                      [f"id-{v:g}" for v in values] if issue_ids else None)


def request(first: int, rows: int) -> list[tuple[int, ...]]:
    values = tuple(range(first, first + rows))
    return [values, tuple("x" for _ in values)]


def run(coalescer: Coalescer, requests: list[list[tuple[int, ...]]], issue_ids: bool = True):
    async def main():
        return await asyncio.gather(*(coalescer(r, issue_ids) for r in requests),
                                    return_exceptions=True)
    return asyncio.run(main())


def test_concurrent_requests_share_one_call_and_each_gets_its_own_rows():
    model = Model()
    requests = [request(10 * k, k % 3 + 1) for k in range(6)]
    answers = run(Coalescer(model, max_rows=256), requests)
    assert model.calls == [sum(k % 3 + 1 for k in range(6))]
    for columns, answer in zip(requests, answers):
        assert answer.values == [float(v) for v in columns[0]]
        assert answer.labels == [f"c{v}" for v in columns[0]]
        assert answer.ids == [f"id-{v}" for v in columns[0]]
        assert answer.probabilities.tolist() == [[1 - v / 100, v / 100] for v in columns[0]]


def test_a_call_never_exceeds_max_rows_and_a_large_request_runs_alone():
    model = Model()
    answers = run(Coalescer(model, max_rows=5), [request(0, 2), request(2, 2), request(4, 2),
                                                 request(6, 7), request(13, 1)])
    assert max(model.calls) <= 7 and 7 in model.calls  # the 7-row request alone
    assert all(c <= 5 for c in model.calls if c != 7)
    assert sum(model.calls) == 14
    assert [a.values for a in answers][3] == [float(v) for v in range(6, 13)]


def test_coalescing_off_calls_the_model_once_per_request():
    model = Model()
    run(Coalescer(model, max_rows=0), [request(0, 1), request(1, 1), request(2, 1)])
    assert model.calls == [1, 1, 1]


def test_no_ids_are_issued_when_no_request_of_the_call_asks():
    model = Model()
    answers = run(Coalescer(model, max_rows=256), [request(0, 1), request(1, 1)],
                  issue_ids=False)
    assert [a.ids for a in answers] == [None, None]


def test_a_broken_model_fails_every_request_of_its_call():
    model = Model(fail=True)
    answers = run(Coalescer(model, max_rows=256), [request(0, 1), request(1, 2)])
    assert model.calls == [3, 1, 2]  # together, then each alone
    for answer in answers:
        with pytest.raises(RuntimeError, match="the model broke"):
            raise answer


def test_a_request_the_model_refuses_fails_alone_and_the_others_are_answered():
    model = Model(refuses=11)
    requests = [request(0, 2), request(10, 2), request(20, 1)]
    answers = run(Coalescer(model, max_rows=256), requests)
    assert model.calls == [5, 2, 2, 1]  # together, then each alone
    with pytest.raises(ValueError, match="cannot take 11"):
        raise answers[1]
    assert answers[0].values == [0.0, 1.0] and answers[2].values == [20.0]
