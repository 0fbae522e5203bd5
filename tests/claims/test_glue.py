"""glue_all: every value reaches the book under its name, Words as Markdown, in the output
myst-nb's own glue makes."""

import IPython.display
import matplotlib.pyplot as plt
import pytest
from IPython.display import Markdown

import torch

from closedloop import _glue
from closedloop.claims import Words, glue_all, standard_errors
from closedloop.plotting import glue_figure


@pytest.fixture
def glued(monkeypatch):
    calls = []
    monkeypatch.setattr(_glue, "glue", lambda name, value: calls.append((name, value)))
    return calls


def test_every_value_is_glued_once(glued):
    """Each name once, in order (hidden under the cell: ``test_the_output_is_myst_nbs_own``)."""
    numbers = {"a": 1.5, "b": (1, 2), "c": None}
    assert glue_all(numbers) is numbers
    assert glued == [("a", 1.5), ("b", (1, 2)), ("c", None)]


def _published(monkeypatch, target, call):
    """What ``call()`` hands IPython's display (patched at ``target``): [(args, kwargs)]."""
    out = []
    monkeypatch.setattr(target[0], target[1], lambda *a, **k: out.append((a, k)))
    call()
    return out


@pytest.mark.parametrize("value", [1.5, (1, 2), None, "stable", Markdown("**3** and $x$"),
                                   "figure"])
def test_the_output_is_myst_nbs_own(monkeypatch, value):
    """The same display call, data, metadata and flags, as myst_nb.glue(..., display=False),
    which the book's build reads back (a change of myst-nb's format fails here). A figure
    with a kernel's PNG formatter on, so that its image is what is compared."""
    import myst_nb.ext.glue as theirs
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.core.pylabtools import select_figure_formats

    if value == "figure":
        value = plt.figure()
        plt.plot([0, 1])
        shell = InteractiveShell.instance()
        for formatter in shell.display_formatter.formatters.values():  # undone after the test
            monkeypatch.setattr(formatter, "type_printers", dict(formatter.type_printers))
        select_figure_formats(shell, {"png"})
        assert _glue.HIDDEN + "image/png" in _published(
            monkeypatch, (IPython.display, "display"), lambda: _glue.glue("f", value))[0][0][0]
    ours = _published(monkeypatch, (IPython.display, "display"),
                      lambda: _glue.glue("name", value))
    mine = _published(monkeypatch, (theirs, "ipy_display"),
                      lambda: theirs.glue("name", value, display=False))
    assert ours == mine and len(ours) == 1
    (data,), kw = ours[0]
    assert kw["metadata"]["scrapbook"] == {"name": "name", "mime_prefix": _glue.HIDDEN}
    assert data and all(k.startswith(_glue.HIDDEN) for k in data)
    plt.close("all")


def test_a_glued_figure_is_closed(monkeypatch):
    fig = plt.figure()
    out = _published(monkeypatch, (IPython.display, "display"), lambda: glue_figure("f", fig))
    assert len(out) == 1 and not plt.fignum_exists(fig.number)


def test_words_become_markdown_and_plain_strings_do_not(glued):
    glue_all({"w": Words("rises above"), "s": "stable"})
    (n1, v1), (n2, v2) = glued
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
