"""A Sphinx extension (listed in _config.yml under sphinx: local_extensions) that keeps each
page's scripts unique.

jupyter-book 1.x registers sphinx-thebe's inline configuration script twice, so every page
carries two ``const THEBE_JS_URL = ...`` declarations and the browser reports a SyntaxError
on each one (the first copy works; the second only fails). An identical script, by file and
attributes (inline body included), is kept once, in its first place. The browser test
(tests/browser.py) fails on any console error, this one included.
"""

from __future__ import annotations


def unique_scripts(app, pagename, templatename, context, doctree):
    files = context.get("script_files")
    if not files:
        return
    seen, kept = set(), []
    for js in files:
        # an inline script is registered with filename None by one extension, '' by another
        key = (str(getattr(js, "filename", js) or ""),
               repr(sorted((getattr(js, "attributes", None) or {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", unique_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
