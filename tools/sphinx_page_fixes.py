"""A Sphinx extension (listed in _config.yml under sphinx: local_extensions) that tidies the
scripts of each HTML page.

- **One copy of each script.** jupyter-book 1.x registers sphinx-thebe's inline configuration
  script twice, so every page carries two ``const THEBE_JS_URL = ...`` declarations and the
  browser reports a SyntaxError on each page (the first copy works, the second only fails). An
  identical script, by file and attributes (inline body included), is kept once, in its first
  place.
- **The widget manager only where a widget is shown.** myst-nb loads require.js and the
  ipywidgets HTML manager (3.6 MB) on every page whose notebook stored widget state, which
  every executed explorer does. The book shows explorers in their static form (see
  closedloop.widgets), so no widget view is on the page and the manager would render nothing.
  On a page without a widget view, the widget state and the ``nb_ipywidgets_js`` scripts are
  left out; a page that does show a widget view keeps them (served from _static/).

The browser test (tests/browser.py) fails on any console error or failed load, these
included.
"""

from __future__ import annotations

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _key(js):
    # an inline script is registered with filename None by one extension, '' by another
    return (str(getattr(js, "filename", js) or ""),
            repr(sorted((getattr(js, "attributes", None) or {}).items())))


def _is_widget_script(js, manager_files) -> bool:
    attributes = getattr(js, "attributes", None) or {}
    name = str(getattr(js, "filename", js) or "")
    return (attributes.get("type") == WIDGET_STATE
            or any(name and name.endswith(f) for f in manager_files))


def tidy_scripts(app, pagename, templatename, context, doctree):
    files = context.get("script_files")
    if not files:
        return
    manager = list(getattr(app.config, "nb_ipywidgets_js", None) or {})
    shows_widgets = WIDGET_VIEW in (context.get("body") or "")
    seen, kept = set(), []
    for js in files:
        if _key(js) in seen or (not shows_widgets and _is_widget_script(js, manager)):
            continue
        seen.add(_key(js))
        kept.append(js)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", tidy_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
