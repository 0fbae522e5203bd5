"""What each chapter claims, as named numbers.

One module a chapter (``claims.ch1`` ... ``claims.ch5``), one function a section of it: the
function takes what the chapter trained (histories, sweeps) and returns ``{glue name: value}``,
the numbers and words that the section's prose reads. The chapter glues them in one call::

    from closedloop.claims import ch1 as claims, glue_all
    numbers = glue_all(claims.open_loop(pairs, seed))

so every sentence with a number in it rests on a function that a unit test can check
(``tests/claims/``), and a cell is one call, not a computation.

Values are plain Python (``int``, ``float``, tuples, dicts, ``None``) and keep the type that the
prose formats (``{glue:text}`name:.3g```). Prose that is a phrase rather than a number is a
``Words``, glued as Markdown and read with ``{glue:md}`name:myst``` (parsed as MyST, so
``$...$`` math in a phrase renders; plain ``{glue:md}`` would leave it as text).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .. import _checks


class Words(str):
    """A phrase for the prose (e.g. "rises above"), glued as Markdown: read with
    ``{glue:md}`name:myst```."""

    __slots__ = ()


def bold(value, spec: str = "") -> str:
    """A number in a phrase, formatted with ``spec`` and bold, as the book shows every glued
    number."""
    return f"**{value:{spec}}**"


def listed(values, spec: str = "") -> Words:
    """Numbers as a phrase, each formatted with ``spec`` and bold as every glued number is:
    "**1**, **2** and **3**"; ``None`` or NaN reads "never"."""
    parts = [("never" if v is None or v != v else bold(v, spec)) for v in values]
    return Words(", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
                 if parts else "none")


def glue_all(numbers: Mapping[str, object]) -> Mapping[str, object]:
    """Glue every ``name: value`` of ``numbers`` for the book (not shown under the cell);
    ``Words`` as Markdown. Returns ``numbers``, so a chapter can pass a value on to a figure."""
    from IPython.display import Markdown

    from .._glue import glue

    bad = [n for n in numbers if not (isinstance(n, str) and n.isidentifier())]
    if bad:  # before gluing anything: a half-glued section would hide the error in the book
        raise ValueError(f"glue names {bad!r} must be identifiers (prose refers to them)")
    for name, value in numbers.items():
        glue(name, Markdown(value) if isinstance(value, Words) else value)
    return numbers


def standard_errors(samples, value: float) -> float:
    """How far the mean of ``samples`` (1-d, e.g. the losses of many sampled batches) lies
    from ``value`` (e.g. the exact expected loss), in standard errors of that mean: (mean -
    value) / (std / sqrt(n)), signed, std over the n samples (no Bessel correction).
    Chapters 2 and 4, sections "Sampled and exact loss"."""
    samples = _checks.real_tensor("samples", samples).detach().cpu().numpy()
    if samples.ndim != 1 or samples.size < 2:
        raise ValueError(f"samples must be 1-d with at least two values, got shape "
                         f"{samples.shape}")
    value = _checks.real("value", value)
    return float((samples.mean() - value) / (samples.std() / np.sqrt(samples.size)))
