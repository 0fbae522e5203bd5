"""glue_all: every value reaches myst-nb's glue under its name, Words as Markdown."""

import pytest
from IPython.display import Markdown

import torch

from closedloop.claims import Words, glue_all, standard_errors


@pytest.fixture
def glued(monkeypatch):
    calls = []
    import myst_nb

    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True:
                        calls.append((name, value, display)))
    return calls


def test_every_value_is_glued_once_hidden(glued):
    numbers = {"a": 1.5, "b": (1, 2), "c": None}
    assert glue_all(numbers) is numbers
    assert glued == [("a", 1.5, False), ("b", (1, 2), False), ("c", None, False)]


def test_words_become_markdown_and_plain_strings_do_not(glued):
    glue_all({"w": Words("rises above"), "s": "stable"})
    (n1, v1, _), (n2, v2, _) = glued
    assert isinstance(v1, Markdown) and v1.data == "rises above"
    assert v2 == "stable" and not isinstance(v2, Markdown)


def test_words_compare_as_their_text():
    assert Words("none") == "none" and isinstance(Words("x"), str)


@pytest.mark.parametrize("name", ["two words", "", 3])
def test_a_name_prose_cannot_refer_to_is_refused(glued, name):
    with pytest.raises(ValueError, match="identifier"):
        glue_all({"fine": 0, name: 1})
    assert glued == []


def test_standard_errors_of_the_mean():
    # mean 2.5, population std sqrt(1.25), n = 4: standard error sqrt(1.25) / 2
    assert standard_errors([1.0, 2.0, 3.0, 4.0], 2.0) == pytest.approx(1 / 1.25**0.5)
    assert standard_errors(torch.tensor([1.0, 2.0, 3.0, 4.0]), 3.0) == pytest.approx(
        -1 / 1.25**0.5)


@pytest.mark.parametrize("samples,value,param", [([1.0], 0.0, "samples"),
                                                 ([[1.0, 2.0]], 0.0, "samples"),
                                                 ([1.0, 2.0], float("nan"), "value")])
def test_standard_errors_name_a_bad_argument(samples, value, param):
    with pytest.raises((ValueError, TypeError), match=param):
        standard_errors(samples, value)
