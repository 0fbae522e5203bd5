"""glue_all: every value reaches myst-nb's glue under its name, Words as Markdown."""

import pytest
from IPython.display import Markdown

from closedloop.claims import Words, glue_all


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
