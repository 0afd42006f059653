"""Labels that hold still: the label HMM (Viterbi for files, causal filter with hysteresis for webcams)."""

from __future__ import annotations

import numpy as np
import pytest

from emoscope.labels import EMOTIONS
from emoscope.video import CausalHmm, FaceTracker, HmmParams, posteriors, viterbi
from test_video import _face

HAPPY, SAD = EMOTIONS.index("happy"), EMOTIONS.index("sad")


def _noisy(fps: float, seconds: float, change_at: float, seed: int = 0, flip: float = 0.3):
    """Probabilities of a face that is happy, then sad from ``change_at`` s; ``flip`` of the frames the
    classifier is wrong (a random other emotion leads)."""
    rng = np.random.default_rng(seed)
    n = round(fps * seconds)
    times = np.arange(n) / fps
    probs = np.full((n, len(EMOTIONS)), 0.05)
    for i, t in enumerate(times):
        k = HAPPY if t < change_at else SAD
        if rng.random() < flip:
            k = int(rng.choice([j for j in range(len(EMOTIONS)) if j != k]))
        probs[i, k] = 0.6
    return probs / probs.sum(1, keepdims=True), times


@pytest.mark.parametrize("fps", [10.0, 30.0, 60.0])
def test_viterbi_holds_still_and_places_a_real_change_within_half_a_second(fps):
    probs, times = _noisy(fps, 8.0, 4.0)
    raw_changes = int((np.diff(probs.argmax(1)) != 0).sum())
    path = viterbi(probs, times)
    changes = np.flatnonzero(np.diff(path) != 0)
    assert raw_changes > 10 and len(changes) == 1
    assert path[0] == HAPPY and path[-1] == SAD
    assert abs(times[changes[0] + 1] - 4.0) <= 0.5


def test_a_short_blip_does_not_change_the_label_but_a_long_one_does():
    fps = 30.0
    times = np.arange(int(12 * fps)) / fps
    probs = np.full((len(times), len(EMOTIONS)), 0.05)
    probs[:, HAPPY] = 0.7
    blip = (times >= 3) & (times < 3.3)  # 0.3 s of sad: a flicker
    long = (times >= 6) & (times < 9)  # 3 s of sad, then 3 s of happy again: real changes
    probs[blip | long, HAPPY], probs[blip | long, SAD] = 0.05, 0.7
    path = viterbi(probs, times)
    assert (path[blip] == HAPPY).all() and (path[long] == SAD).all() and path[-1] == HAPPY


def test_posteriors_are_probabilities_and_agree_with_the_path():
    probs, times = _noisy(30.0, 6.0, 3.0, seed=1)
    post = posteriors(probs, times)
    assert post.shape == probs.shape and np.allclose(post.sum(1), 1.0)
    path = viterbi(probs, times)
    assert (post.argmax(1) == path).mean() > 0.95


def test_causal_filter_with_hysteresis_ignores_flicker_and_follows_a_change():
    probs, times = _noisy(30.0, 8.0, 4.0, seed=2)
    hmm = CausalHmm(HmmParams(), len(EMOTIONS))
    labels = [hmm.update(p, t)[1] for p, t in zip(probs, times)]
    changes = [i for i in range(1, len(labels)) if labels[i] != labels[i - 1]]
    assert labels[-1] == SAD and len(changes) <= 2  # the first frame may start elsewhere
    assert times[changes[-1]] - 4.0 < 2.0  # causal: it follows, within two seconds


def test_tracker_smooths_with_the_causal_hmm_by_default():
    tracker = FaceTracker()
    labels = []
    for i in range(60):
        label = "sad" if i % 4 == 3 else "happy"  # one frame in four flickers to sad
        labels.append(tracker.update([_face(10, 10, label, 0.6)], i / 30)[0].label)
    assert set(labels[5:]) == {"happy"}


def test_hmm_params_are_checked():
    for bad in ({"switch_rate": 0}, {"evidence_s": -1}, {"hysteresis": 1.0}):
        with pytest.raises(ValueError):
            HmmParams(**bad)
