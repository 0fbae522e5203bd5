"""Values handed to the book: the output ``myst_nb.glue(name, value, display=False)`` makes,
published without importing ``myst_nb.ext.glue``, which imports nbformat, whose jsonschema
imports rfc3987_syntax (it builds a grammar on import): 1.4-1.7 s of CPU in every chapter's
kernel. The output is myst-nb 1.4's (the pinned version), checked against its own glue by
``tests/claims/test_glue.py``; the book's build reads it with myst-nb as before."""

from __future__ import annotations

# the prefix myst-nb (and papermill's scrapbook before it) gives a value glued but not shown
HIDDEN = "application/papermill.record/"


def glue(name: str, value) -> None:
    """Glue ``value`` under ``name``, not shown under its cell (IPython's display of it, every
    mime type prefixed, and the scrapbook metadata that names it)."""
    from IPython.core.formatters import format_display_data
    from IPython.display import display

    bundle, metadata = format_display_data(value)
    metadata["scrapbook"] = dict(name=name, mime_prefix=HIDDEN)
    display({HIDDEN + k: v for k, v in bundle.items()}, raw=True, metadata=metadata)
