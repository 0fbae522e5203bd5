"""A minimal W3C WebDriver client for headless Chromium (standard library only), shared by the
browser test (tests/browser.py) and the PDF of the book (tools/pdf.py).

``Browser(offline=True)`` starts chromedriver on a free port and a headless Chromium in which
no host name resolves (no network at all); ``get``, ``js``, ``js_async``, ``find_all``,
``keys``, ``screenshot``, ``print_pdf`` and ``close`` drive it.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


def _find(*names):
    return next((shutil.which(n) for n in names if shutil.which(n)), None)


CHROMIUM = _find("chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER = _find("chromedriver")


def missing(what: str) -> str | None:
    """None where headless Chromium and its driver are both on PATH; otherwise one line that
    says ``what`` needs them, which of the two was not found, and the Debian packages that
    provide them (the wording of the browser test's skip reason)."""
    if CHROMIUM and CHROMEDRIVER:
        return None
    return (f"{what} needs headless Chromium and its driver: chromium "
            f"{'found' if CHROMIUM else 'not found'}, chromedriver "
            f"{'found' if CHROMEDRIVER else 'not found'} (Debian: apt-get install chromium "
            "chromium-driver; .ci/run installs them)")


ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


class Browser:
    """Headless Chromium through chromedriver's W3C WebDriver endpoints. ``offline``: no host
    name resolves (127.0.0.1 neither), so nothing can be fetched from a network."""

    def __init__(self, offline: bool = True):
        reason = missing("Browser()")
        if reason:  # not subprocess's TypeError on a None path
            raise RuntimeError(reason)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while True:
            try:
                if self._call("GET", "/status")["ready"]:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                self.proc.kill()
                raise RuntimeError("chromedriver did not start within 30 s")
            time.sleep(0.2)
        options = {"binary": CHROMIUM, "args": [
            "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
            "--window-size=1280,1600", "--hide-scrollbars",
            # offline: no host name resolves, so anything fetched from the network fails
            *(["--host-resolver-rules=MAP * ~NOTFOUND"] if offline else [])]}
        caps = {"browserName": "chrome", "goog:chromeOptions": options,
                "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"}}
        try:
            value = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})
        except BaseException:
            self.proc.kill()  # no browser: leave no driver behind
            raise
        self.session = f"/session/{value['sessionId']}"
        self._call("POST", f"{self.session}/timeouts", {"script": 60000, "pageLoad": 60000})

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"WebDriver {method} {path}: {exc.read()[:500]!r}") from None

    def cmd(self, method, path="", body=None):
        return self._call(method, self.session + path, body)

    def get(self, url):
        self.cmd("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def js_async(self, script, *args):
        return self.cmd("POST", "/execute/async", {"script": script, "args": list(args)})

    def log(self, kind):
        return self.cmd("POST", "/se/log", {"type": kind})

    def find_all(self, css):
        found = self.cmd("POST", "/elements", {"using": "css selector", "value": css})
        return [e[ELEMENT] for e in found]

    def keys(self, element, text):
        self.cmd("POST", f"/element/{element}/value", {"text": text})

    def screenshot(self, path, element=None):
        data = self.cmd("GET", f"/element/{element}/screenshot" if element else "/screenshot")
        path.write_bytes(base64.b64decode(data))

    def print_pdf(self, path: Path, **options):
        """The current page printed to PDF (WebDriver's print: A4, backgrounds) into
        ``path``."""
        body = {"background": True, "page": {"width": 21.0, "height": 29.7},
                "margin": {"top": 1.2, "bottom": 1.2, "left": 1.2, "right": 1.2}, **options}
        path.write_bytes(base64.b64decode(self.cmd("POST", "/print", body)))

    def close(self):
        try:
            self.cmd("DELETE")
        finally:
            self.proc.terminate()
            self.proc.wait(10)


WAIT_FOR_MATHJAX = """
var done = arguments[arguments.length - 1], t0 = Date.now();
function report() {
  var math = Array.from(document.querySelectorAll('.math'));
  return {math: math.length,
          unrendered: math.filter(function (m) { return !m.querySelector('mjx-container'); })
                          .map(function (m) { return m.textContent.slice(0, 60); }),
          errors: document.querySelectorAll('mjx-merror').length,
          stray: strayTeX(),
          mathjax: !!(window.MathJax && window.MathJax.startup)};
}
function strayTeX() {  // $...$ with TeX in it left in the prose (e.g. glued Markdown)
  var body = (document.querySelector('main') || document.body).cloneNode(true);
  body.querySelectorAll('pre, code, script, style, mjx-container, .math')
      .forEach(function (n) { n.remove(); });
  return body.textContent.match(/\\$[^$\\n]*[\\\\_^][^$\\n]*\\$/g) || [];
}
(function wait() {
  if (document.readyState === 'complete' && window.MathJax && MathJax.startup
      && MathJax.startup.promise) {
    MathJax.startup.promise.then(function () { done(report()); },
                                 function (e) { done({failed: String(e)}); });
  } else if ((document.readyState === 'complete' && !document.querySelector('.math'))
             || Date.now() - t0 > 30000) {
    done(report());  // a page without math loads no MathJax
  } else { setTimeout(wait, 100); }
})();
"""
