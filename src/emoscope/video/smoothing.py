"""Per-track smoothing of emotion probabilities over time: labels that hold still.

A face's expression changes a few times a minute, while a frame-by-frame classifier flickers several times
a second. Smoothing treats the true emotion of a track as a hidden state that rarely changes (an HMM, "hidden
Markov model"): in ``dt`` seconds it switches with probability ``1 - exp(-switch_rate * dt)``, to any other
emotion alike. Each analysed frame's probabilities are the evidence, tempered by ``dt / evidence_s`` so that
one second of video counts the same at 10 or 60 frames/s (neighbouring frames are not independent looks).

- Files (``smoothing="hmm"``): :func:`viterbi` finds the most likely label path over the whole track, and
  :func:`posteriors` (forward-backward) the probability of each emotion at each frame given the whole track.
  A change is placed where it happened, not later, once the new emotion has led long enough to pay for it.
- Webcams and streams: :class:`CausalHmm` runs the forward filter (only the past), and its label changes
  only when another emotion leads the shown one by ``hysteresis`` (a margin, so a 50/50 face does not flicker).
- ``ema`` / ``vote`` / ``none``: the earlier causal smoothers (:func:`smooth_step`), kept for comparison.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

SMOOTHING = ("hmm", "ema", "vote", "none")
_EPS = 1e-6


@dataclass(frozen=True)
class HmmParams:
    """Parameters of the label HMM (see the module doc).

    ``switch_rate``: expected emotion changes per second (lower: labels hold longer). ``evidence_s``: seconds
    of video that count as one independent look. ``hysteresis``: causal only, the lead another emotion's
    filtered probability needs over the shown label's before the label changes.
    """

    switch_rate: float = 0.02
    evidence_s: float = 0.3
    hysteresis: float = 0.3

    def __post_init__(self) -> None:
        if not (self.switch_rate > 0 and math.isfinite(self.switch_rate)):
            raise ValueError(f"switch_rate must be above 0 changes per second, got {self.switch_rate}")
        if not (self.evidence_s > 0 and math.isfinite(self.evidence_s)):
            raise ValueError(f"evidence_s must be above 0 seconds, got {self.evidence_s}")
        if not 0 <= self.hysteresis < 1:
            raise ValueError(f"hysteresis must be in [0, 1), got {self.hysteresis}")

    def log_transition(self, dt: float, k: int) -> np.ndarray:
        """k x k log transition matrix for a step of ``dt`` seconds."""
        stay = math.exp(-self.switch_rate * max(dt, 1e-3))
        m = np.full((k, k), math.log(max((1 - stay) / max(k - 1, 1), 1e-300)))
        np.fill_diagonal(m, math.log(stay))
        return m

    def log_evidence(self, probs: np.ndarray, dt: np.ndarray | float) -> np.ndarray:
        """Tempered log evidence of probabilities (N x k, or k) for steps of ``dt`` seconds."""
        w = np.clip(np.asarray(dt, np.float64) / self.evidence_s, 0.0, 1.0)
        return np.log(np.clip(probs, _EPS, 1.0)) * (w[..., None] if np.ndim(w) else w)


def _steps(times: np.ndarray) -> np.ndarray:
    """Seconds each frame stands for: the gap to the previous frame (the median gap for the first)."""
    dt = np.diff(times, prepend=times[0])
    dt[0] = float(np.median(dt[1:])) if len(dt) > 1 else 1 / 30
    return np.clip(dt, 1e-3, None)


def viterbi(probs: np.ndarray, times: np.ndarray, params: HmmParams = HmmParams()) -> np.ndarray:
    """Most likely label index per frame of one track (``probs``: N x k, ``times``: N seconds, increasing)."""
    probs = np.asarray(probs, np.float64)
    n, k = probs.shape
    if n == 0:
        return np.zeros(0, np.int64)
    dt = _steps(np.asarray(times, np.float64))
    ev = params.log_evidence(probs, dt)
    score = ev[0] - math.log(k)
    back = np.zeros((n, k), np.int64)
    for i in range(1, n):
        cand = score[:, None] + params.log_transition(dt[i], k)  # from x to
        back[i] = np.argmax(cand, axis=0)
        score = cand[back[i], np.arange(k)] + ev[i]
    path = np.empty(n, np.int64)
    path[-1] = int(np.argmax(score))
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def posteriors(probs: np.ndarray, times: np.ndarray, params: HmmParams = HmmParams()) -> np.ndarray:
    """N x k probability of each emotion at each frame given the whole track (forward-backward)."""
    probs = np.asarray(probs, np.float64)
    n, k = probs.shape
    if n == 0:
        return np.zeros((0, k))
    dt = _steps(np.asarray(times, np.float64))
    ev = np.exp(params.log_evidence(probs, dt))
    trans = [np.exp(params.log_transition(d, k)) for d in dt]
    fwd = np.empty((n, k))
    a = ev[0] / k
    fwd[0] = a / a.sum()
    for i in range(1, n):
        a = (fwd[i - 1] @ trans[i]) * ev[i]
        fwd[i] = a / a.sum()
    out = np.empty((n, k))
    b = np.ones(k)
    out[-1] = fwd[-1]
    for i in range(n - 2, -1, -1):
        b = trans[i + 1] @ (ev[i + 1] * b)
        b /= b.sum()
        g = fwd[i] * b
        out[i] = g / g.sum()
    return out


class CausalHmm:
    """The forward filter of the label HMM for one track, with a hysteresis on the shown label (live use)."""

    def __init__(self, params: HmmParams, k: int) -> None:
        self.params, self.k = params, k
        self.state: np.ndarray | None = None
        self.label: int | None = None
        self.last_t: float | None = None

    def update(self, p: np.ndarray, t: float) -> tuple[np.ndarray, int]:
        """Feed one frame's probabilities at time ``t``; returns (filtered probabilities, shown label index)."""
        p = np.asarray(p, np.float64)
        if self.state is None:
            dt = 1 / 30
            prior = np.full(self.k, 1 / self.k)
        else:
            dt = max(1e-3, t - (self.last_t or t))
            prior = self.state @ np.exp(self.params.log_transition(dt, self.k))
        a = prior * np.exp(self.params.log_evidence(p, dt))
        self.state, self.last_t = a / a.sum(), t
        best = int(np.argmax(self.state))
        if self.label is None or self.state[best] - self.state[self.label] > self.params.hysteresis:
            self.label = best
        return self.state, self.label


def smooth_step(method: str, time_constant: float, state: np.ndarray, votes: deque, p: np.ndarray, t: float,
                last_t: float, first: bool) -> np.ndarray:
    """One step of the simple causal smoothers of one track: the new state from the old one and ``p``.

    ``ema``: exponential moving average with time constant ``time_constant`` seconds (weight of the new frame
    ``1 - exp(-dt / time_constant)``, frame-rate independent); ``vote``: share of frames per label over the last
    ``time_constant`` seconds (``votes`` holds them); ``none``: the frame's own probabilities.
    """
    if method == "none" or time_constant == 0:
        return p.copy()
    if method == "ema":
        if first:
            return p.copy()
        alpha = 1.0 - math.exp(-max(0.0, t - last_t) / time_constant)
        return state + alpha * (p - state)
    votes.append((t, int(np.argmax(p))))
    while len(votes) > 1 and votes[0][0] < t - time_constant:
        votes.popleft()
    counts = np.bincount([v for _, v in votes], minlength=len(p)).astype(np.float64)
    counts[votes[-1][1]] += 1e-6  # ties go to the most recent label
    return counts / counts.sum()
