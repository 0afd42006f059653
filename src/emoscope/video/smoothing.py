"""Per-track smoothing of emotion probabilities over time."""

from __future__ import annotations

import math
from collections import deque

import numpy as np

SMOOTHING = ("ema", "vote", "none")


def smooth_step(method: str, time_constant: float, state: np.ndarray, votes: deque, p: np.ndarray, t: float,
                last_t: float, first: bool) -> np.ndarray:
    """One step of causal smoothing of one track: returns the new state from the old one and this frame's ``p``.

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
