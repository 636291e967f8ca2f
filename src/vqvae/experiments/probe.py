"""What the codes of a speech VQ-VAE know: the digit said, and who said it.

The paper (van den Oord et al. 2017, section 4.3) trains a classifier to read phonemes from
the latents of LibriSpeech utterances: 49.3% of 41 phonemes against 7.2% by chance, while
the speaker is left to the decoder. On FSDD the analogue is an utterance-level probe: each
recording's codes as a histogram (the fraction of its positions that use each of the K
codes, trailing padding excluded), a multinomial logistic regression trained on the
training recordings' histograms and scored on the test recordings', for the digit and for
the speaker, each beside the majority-class baseline (what a probe learns with no
information at all). A histogram forgets the order of the codes, so this is a lower bound
on what they know.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from vqvae.codefile import AudioCodes


@dataclass(frozen=True)
class ProbeScore:
    accuracy: float  # on the test codes
    baseline: float  # the majority class of the training labels, scored on the test labels
    classes: int


@dataclass(frozen=True)
class ProbeResult:
    digit: ProbeScore | None
    speaker: ProbeScore | None
    num_train: int
    num_test: int

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        rows = ["| what | probe accuracy | majority baseline | classes |", "|---|---:|---:|---:|"]
        for name in ("digit", "speaker"):
            s = getattr(self, name)
            if s is not None:
                rows.append(f"| {name} | {s.accuracy:.1%} | {s.baseline:.1%} | {s.classes} |")
        return "\n".join(rows)


def histograms(found: AudioCodes, num_codes: int) -> np.ndarray:
    """Each utterance's code frequencies over its own ``lengths[i]`` positions: (N, K) for
    one level of codes, (N, Q * K) for Q residual levels."""
    codes = found.codes if found.codes.ndim == 3 else found.codes[:, None]  # (N, Q, T')
    n, levels, _ = codes.shape
    out = np.zeros((n, levels, num_codes), dtype=np.float32)
    for i, length in enumerate(found.lengths):
        for q in range(levels):
            out[i, q] = np.bincount(codes[i, q, :length], minlength=num_codes) / max(length, 1)
    return out.reshape(n, -1)


def _probe(x_train, y_train, x_test, y_test, seed: int) -> ProbeScore:
    from sklearn.linear_model import LogisticRegression  # a second to import: only when used

    majority = np.bincount(y_train).argmax()
    model = LogisticRegression(C=10.0, max_iter=3000, random_state=seed).fit(x_train, y_train)
    return ProbeScore(
        accuracy=float(np.mean(model.predict(x_test) == y_test)),
        baseline=float(np.mean(y_test == majority)),
        classes=int(len(np.unique(y_train))),
    )


def probe(train: AudioCodes, test: AudioCodes, num_codes: int, seed: int = 0) -> ProbeResult:
    """Linear probes from code histograms: trained on ``train``, scored on ``test``."""
    x_train, x_test = histograms(train, num_codes), histograms(test, num_codes)

    def one(field: str) -> ProbeScore | None:
        a, b = getattr(train, field), getattr(test, field)
        if a is None or b is None or len(np.unique(a)) < 2:
            return None
        return _probe(x_train, a, x_test, b, seed)

    return ProbeResult(one("labels"), one("speakers"), len(x_train), len(x_test))
