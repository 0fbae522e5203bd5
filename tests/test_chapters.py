"""Every chapter carries an explorer (one call into closedloop.explorers.chN) and a box that
tells how to run it with other parameters, whose papermill command names real parameters."""

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHAPTERS = [pytest.param(p, id=p.name) for p in sorted((ROOT / "book").glob("ch*.ipynb"))]


def cells(path):
    return json.loads(path.read_text())["cells"]


@pytest.mark.parametrize("path", CHAPTERS)
def test_chapter_has_an_explorer_and_a_run_box(path):
    nb = cells(path)
    code = ["".join(c["source"]) for c in nb if c["cell_type"] == "code"]
    prose = "\n".join("".join(c["source"]) for c in nb if c["cell_type"] == "markdown")
    explorers = [c for c in code if re.search(
        rf"from closedloop\.explorers\.{path.stem[:3]} import \w+_explorer", c)]
    assert explorers, "each chapter has an explorer cell (closedloop.explorers.chN)"
    for cell in explorers:  # one call: the logic lives in the package
        body = [line for line in cell.splitlines() if line and not line.startswith("from ")]
        assert len(body) == 1, cell
    assert "Run this chapter with other parameters" in prose
    params = next(c for c in nb if "parameters" in c["metadata"].get("tags", []))
    names = set(re.findall(r"^(\w+)\s*=", "".join(params["source"]), re.MULTILINE))
    commands = re.findall(r"papermill book/(\S+)\.ipynb\s+\S+((?:\s+-p \S+ \S+)+)", prose)
    assert commands, "the box shows a papermill command"
    for nb_name, args in commands:
        assert nb_name == path.stem, f"the command runs {nb_name}, not this chapter"
        used = set(re.findall(r"-p (\S+)", args))
        assert used <= names, f"not in the parameters cell: {used - names}"


# what a chapter's code cell may not hold: the logic lives in the package (issue 18)
LOGIC = {ast.FunctionDef: "a function definition", ast.AsyncFunctionDef: "a function definition",
         ast.Lambda: "a lambda", ast.ClassDef: "a class", ast.For: "a loop", ast.While: "a loop",
         ast.If: "an if statement", ast.IfExp: "a conditional expression",
         ast.ListComp: "a loop (comprehension)", ast.DictComp: "a loop (comprehension)",
         ast.SetComp: "a loop (comprehension)", ast.GeneratorExp: "a loop (comprehension)"}


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name)
                                  for p in sorted((ROOT / "book").glob("*.ipynb"))])
def test_cells_are_calls_not_logic(path):
    """No function, loop or branch in a cell, and numbers reach the prose through
    ``claims.glue_all`` (one call a section) or ``glue_figure``, never a bare ``glue``."""
    for cell in cells(path):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        tree = ast.parse("\n".join(line for line in source.splitlines()
                                   if not line.lstrip().startswith(("%", "!"))))
        for node in ast.walk(tree):
            what = LOGIC.get(type(node))
            assert what is None, f"{what} in a cell (line {node.lineno}):\n{source}"
            name = getattr(node.func, "id", getattr(node.func, "attr", None)) \
                if isinstance(node, ast.Call) else None
            if name == "glue":  # glue(...) or myst_nb.glue(...)
                raise AssertionError(f"a bare glue call (use claims.glue_all):\n{source}")


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name)
                                  for p in sorted((ROOT / "book").glob("*.ipynb"))])
def test_glued_phrases_are_read_as_myst(path):
    """``{glue:md}`name``` parses CommonMark only: a phrase's ``$...$`` math would stay text
    in the page. Every phrase is read with the MyST format (``name:myst``)."""
    prose = "\n".join("".join(c["source"]) for c in cells(path) if c["cell_type"] == "markdown")
    plain = re.findall(r"\{glue:md\}`([^`]*)`", prose)
    assert all(p.endswith(":myst") for p in plain), [p for p in plain if not p.endswith(":myst")]


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name)
                                  for p in sorted((ROOT / "book").glob("*.ipynb"))])
def test_no_escaped_newline_in_a_cell(path):
    """A literal backslash-n (not a LaTeX command such as \\nabla) in prose or a code comment is
    a line break pasted as text (a comment in Chapter 1 read "in the\\n# trainings'"), shown as
    such in the book."""
    for cell in cells(path):
        source = "".join(cell["source"])
        if cell["cell_type"] == "code":
            source = "\n".join(line for line in source.splitlines()
                               if line.lstrip().startswith("#"))
        assert not re.search(r"\\n(?![A-Za-z])", source), source
