"""Continuous batching: one thread advances every generation in flight, together.

    engine = Engine(model, capacity=64)         # a model's weights in a charrnn._batch.Batch
    sched = Scheduler(); sched.start()
    job = Job(engine, ids, prompt_text, seed=1, stream=0, ...); sched.submit(job)
    ... job.events (an asyncio.Queue, filled from the scheduler thread) ...
    job.cancel()                                 # the client went away: row freed next step

Each loop of the scheduler thread: take the waiting jobs into free rows (join: the prompt
is fed, the seed stream set), run a few steps of each engine's batch with the GIL released
(charrnn._batch; fewer steps when jobs wait, so that they join soon), then hand each job
its new text and drop the jobs that are done, stopped or cancelled (leave). A job never
waits for another to finish, only for a free row.

Live reload: a model's newer engine takes new jobs; an older one keeps stepping its jobs
to their end on the old weights and is dropped when empty (Scheduler.swap).
"""
from __future__ import annotations

import sys
import threading
import time
from collections import deque

import numpy as np

from charrnn import _batch
from charrnn.generate import sampler as _sampler

STEPS = 8              # steps per batch call while nobody waits (Python runs between calls),
                       # twice that beyond 8 rows: fewer, larger events when the batch is big
SWITCH_INTERVAL = 0.0005  # seconds: how long a thread waiting for the GIL waits at most


class Engine:
    """A model version ready for batched generation: `capacity` rows at most."""

    def __init__(self, model, capacity=64, name="model", version=0):
        smp = _sampler.Sampler(model.params, model.config, model.vocab)
        params = _sampler._check_params(model.params, _sampler.expected_shapes(model.config))
        self.net = _batch.Net(smp.cell, *_sampler._prepare(smp.cell, model.config["layers"],
                                                           params, _sampler.TABLE_LIMIT))
        self.sampler, self.model, self.name, self.version = smp, model, name, version
        self.vocab = smp.vocab
        self.batch = _batch.Batch(self.net, capacity)
        self.jobs = []                 # row -> Job
        R = capacity
        self.ids = np.zeros((R, 2 * STEPS), np.int32)
        self.lp = np.zeros((R, 2 * STEPS), np.float32)
        self.top_ids = np.zeros((R, 2 * STEPS, _batch.TOP_MAX), np.int32)
        self.top_lp = np.zeros((R, 2 * STEPS, _batch.TOP_MAX), np.float32)

    @property
    def free(self):
        return self.batch.capacity - self.batch.rows


class Job:
    """One choice of one request: its options, where its text goes, and its progress.

    Text is handed over without the stop string (as OpenAI does): the last few characters
    are held back until it is clear they do not begin one."""

    def __init__(self, engine, ids, prompt_text, *, seed, stream=0, temperature=1.0,
                 top_k=None, top_p=None, max_tokens=16, stop=(), logprobs=None,
                 loop=None, events=None, index=0):
        self.engine, self.ids, self.prompt_text = engine, ids, prompt_text
        self.seed, self.stream, self.index = seed, stream, index
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.remaining, self.stops, self.logprobs = max_tokens, tuple(stop), logprobs
        self.out = _sampler._Output(engine.sampler, prompt_text, self.stops)
        self.keep = max((len(s) for s in self.stops), default=1) - 1
        self.pending, self.pending_lp = "", []
        self.tail = prompt_text[len(prompt_text) - self.keep:] if self.keep else ""
        self.loop, self.events = loop, events
        self.generated = 0             # characters (ids) made
        self.finish_reason = None
        self.cancelled = False
        self.submitted = time.monotonic()

    def cancel(self):
        """Free the row at the next step (any thread)."""
        self.cancelled = True

    # -- called by the scheduler thread --------------------------------------------------

    def _take(self, ids, lp, top_ids, top_lp):
        """New ids (T,) and their log-probabilities: returns True when done."""
        n = len(ids)
        self.remaining -= n
        self.generated += n
        text, stopped = self.out.feed(ids)
        if not stopped and self.remaining <= 0:
            text += self.out.finish()
        entries = []
        if self.logprobs is not None:
            vocab = self.engine.vocab
            for t in range(min(n, len(text))):
                entries.append((vocab[ids[t]], float(lp[t]),
                                {vocab[i]: float(v) for i, v in
                                 zip(top_ids[t, :self.logprobs], top_lp[t, :self.logprobs])}))
        self.pending += text
        self.pending_lp += entries
        if stopped:
            seen = self.tail + self.pending    # a stop string may begin in the prompt
            cut = min(len(self.pending),
                      max((len(s) for s in self.stops if seen.endswith(s)), default=0))
            self.pending = self.pending[:len(self.pending) - cut]
            self.pending_lp = self.pending_lp[:len(self.pending)]
            self.finish_reason = "stop"
        elif self.remaining <= 0:
            self.finish_reason = "length"
        if self.finish_reason:
            self._emit(len(self.pending))
            self._send(("done", self.finish_reason))
            return True
        self._emit(len(self.pending) - self.keep)
        return False

    def _emit(self, n):
        if n <= 0:
            return
        text, self.pending = self.pending[:n], self.pending[n:]
        lps, self.pending_lp = self.pending_lp[:n], self.pending_lp[n:]
        if self.keep:
            self.tail = (self.tail + text)[-self.keep:]
        self._send(("text", text, lps))

    def _send(self, event):
        event = (self.index,) + event          # choices of one request share a queue
        if self.loop is None:
            self.events.append(event)          # a plain list: tests and the benchmark
        else:
            try:
                self.loop.call_soon_threadsafe(self.events.put_nowait, event)
            except RuntimeError:               # the event loop has closed
                self.cancelled = True


class Scheduler:
    """The thread that steps every engine's batch; see the module docstring."""

    def __init__(self, steps=STEPS):
        self.steps = steps
        self.engines = {}              # model name -> [Engine, ...] (the newest last)
        self.waiting = deque()
        self.cv = threading.Condition()
        self.thread = None
        self.running = False
        self.stepped = 0               # batch steps so far (tests, /health)
        self.peak = 0                  # most rows stepped together so far
        self.error = None

    # -- any thread ------------------------------------------------------------------------

    def add(self, engine):
        """Serve `engine` for its model name; an older engine of that name drains."""
        with self.cv:
            self.engines.setdefault(engine.name, []).append(engine)
            self.cv.notify()

    swap = add

    def newest(self, name):
        with self.cv:
            return self.engines[name][-1]

    def submit(self, job):
        with self.cv:
            self.waiting.append(job)
            self.cv.notify()

    def in_flight(self):
        with self.cv:
            return len(self.waiting) + sum(len(e.jobs) for es in self.engines.values()
                                           for e in es)

    def finish_all(self):
        """End every job now (finish_reason "length"): shutting down."""
        with self.cv:
            for es in self.engines.values():
                for e in es:
                    for j in e.jobs:
                        j.cancelled = "shutdown"
            for j in self.waiting:
                j.cancelled = "shutdown"
            self.cv.notify()

    def start(self):
        # The batch thread needs the GIL back after every step; with Python's default
        # 5 ms switch interval it could wait that long behind the event loop's thread
        # (the convoy effect), longer than a step of 8 rows takes. 0.5 ms: bench/serve.py.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        self.running = True
        self.thread = threading.Thread(target=self._run, name="charrnn-batch", daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.finish_all()
        with self.cv:
            self.running = False
            self.cv.notify()
        if self.thread is not None:
            self.thread.join(10)

    # -- the scheduler thread --------------------------------------------------------------

    def _run(self):
        try:
            while True:
                with self.cv:
                    while self.running and not self.waiting and not any(
                            e.jobs for es in self.engines.values() for e in es):
                        self.cv.wait(1.0)
                    if not self.running and not self.waiting and not any(
                            e.jobs for es in self.engines.values() for e in es):
                        return
                    self._admit()
                    engines = [e for es in self.engines.values() for e in es if e.jobs]
                    busy = bool(self.waiting)
                for e in engines:
                    self._step(e, 1 if busy else self.steps * (1 + (len(e.jobs) > 8)))
                with self.cv:          # drop drained old engines
                    for name, es in self.engines.items():
                        self.engines[name] = [e for e in es[:-1] if e.jobs] + es[-1:]
        except BaseException as exc:   # never silently: every waiting client gets an error
            self.error = exc
            with self.cv:
                for j in list(self.waiting) + [j for es in self.engines.values()
                                               for e in es for j in e.jobs]:
                    j._send(("error", f"the batch thread failed: {exc!r}"))
            raise

    def _admit(self):
        """Waiting jobs into free rows of their engine, in arrival order (under cv)."""
        left = deque()
        while self.waiting:
            job = self.waiting.popleft()
            if job.cancelled:
                job.finish_reason = "length"
                job._send(("done", "length"))
                continue
            e = job.engine
            if e.free == 0:
                left.append(job)
                continue
            e.batch.join(job.ids, job.seed, job.stream, job.temperature, job.top_k,
                         job.top_p, -1 if job.logprobs is None else job.logprobs)
            e.jobs.append(job)
            self.peak = max(self.peak, len(e.jobs))
        self.waiting = left

    def _step(self, e, T):
        jobs = e.jobs
        # Drop cancelled rows before stepping; never step past a job's max_tokens.
        for r in range(len(jobs) - 1, -1, -1):
            if jobs[r].cancelled:
                j = jobs[r]
                j.finish_reason = "length"
                j._send(("done", "length"))
                self._leave(e, r)
        if not jobs:
            return
        T = min(T, e.ids.shape[1], min(j.remaining for j in jobs))
        e.batch.step(e.ids, e.lp, e.top_ids, e.top_lp, T)
        self.stepped += T
        for r in range(len(jobs) - 1, -1, -1):
            if jobs[r]._take(e.ids[r, :T], e.lp[r, :T], e.top_ids[r, :T], e.top_lp[r, :T]):
                self._leave(e, r)

    def _leave(self, e, r):
        moved = e.batch.leave(r)
        last = e.jobs.pop()
        if moved >= 0:
            e.jobs[r] = last
