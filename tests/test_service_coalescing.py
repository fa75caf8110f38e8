"""Concurrent requests share model calls (service.inference.Coalescer), each answered with its
own rows as if alone."""
from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from service.inference import Answer, Coalescer


class Model:
    """A predictor that answers each row with its value (and the value's class) and records
    the size of every model call and the thread it ran in."""

    def __init__(self, fail: bool = False, refuses: int | None = None,
                 seconds: float = 0.0) -> None:
        self.calls: list[int] = []
        self.threads: list[str] = []
        self.fail = fail
        self.refuses = refuses  # a row value the model cannot take
        self.seconds = seconds  # how long a call takes
        self.model = self  # the Predictor's parts: model.predict, then record

    def predict(self, columns):
        self.calls.append(len(columns[0]))
        self.threads.append(threading.current_thread().name)
        time.sleep(self.seconds)
        if self.fail:
            raise RuntimeError("the model broke")
        if self.refuses in columns[0]:
            raise ValueError(f"cannot take {self.refuses}")
        values = [float(v) for v in columns[0]]
        return [f"c{int(v)}" for v in values], np.array([[1 - v / 100, v / 100] for v in values])

    def record(self, columns, issue_ids: bool, labels, scores) -> Answer:
        values = [float(label[1:]) for label in labels]
        return Answer(labels, values, scores,
                      [f"id-{v:g}" for v in values] if issue_ids else None)

    def __call__(self, columns, issue_ids: bool = True) -> Answer:
        return self.record(columns, issue_ids, *self.predict(columns))


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


def test_large_calls_run_in_the_model_thread_and_small_ones_on_the_loop():
    model = Model()
    with ThreadPoolExecutor(1, thread_name_prefix="model") as thread:
        coalescer = Coalescer(model, max_rows=256, executor=thread, thread_rows=4)
        small = run(coalescer, [request(0, 1), request(1, 2)])
        large = run(coalescer, [request(10, 2), request(20, 3)])
    assert model.calls == [3, 5]
    assert model.threads[0] == "MainThread" and model.threads[1].startswith("model")
    assert [a.values for a in small + large] == [[0.0], [1.0, 2.0], [10.0, 11.0],
                                                 [20.0, 21.0, 22.0]]


def test_requests_that_arrive_while_the_model_thread_is_busy_share_the_next_call():
    model = Model(seconds=0.2)

    async def main(coalescer):
        first = asyncio.ensure_future(coalescer(request(0, 4)))
        await asyncio.sleep(0.05)  # the first call is under way in the model thread
        later = [coalescer(request(10 * k, 4)) for k in range(1, 4)]
        return await asyncio.gather(first, *later)

    with ThreadPoolExecutor(1, thread_name_prefix="model") as thread:
        answers = asyncio.run(main(Coalescer(model, max_rows=256, executor=thread,
                                             thread_rows=1)))
    assert model.calls == [4, 12]  # one call under way, the three that came meanwhile next
    assert [a.values[0] for a in answers] == [0.0, 10.0, 20.0, 30.0]
    assert all(t.startswith("model") for t in model.threads)


def test_a_request_the_model_refuses_in_its_thread_fails_alone():
    model = Model(refuses=11)
    with ThreadPoolExecutor(1, thread_name_prefix="model") as thread:
        answers = run(Coalescer(model, max_rows=256, executor=thread, thread_rows=1),
                      [request(0, 2), request(10, 2), request(20, 1)])
    assert model.calls == [5, 2, 2, 1]
    assert isinstance(answers[1], ValueError)
    assert answers[0].values == [0.0, 1.0] and answers[2].values == [20.0]
