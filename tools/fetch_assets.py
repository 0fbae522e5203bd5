"""Fetch the JavaScript the built book needs into _vendor/, so that it works offline.

Sphinx loads MathJax, and myst-nb loads require.js and the ipywidgets HTML manager, from
public CDNs by default. A book read from a local folder (or a laptop on a train) then shows
raw TeX. This script takes pinned npm packages straight from the npm registry's tarballs
(Python's standard library only: no node, no npm), checks each against the registry's sha512
integrity pinned below, and unpacks the files the pages load into _vendor/ (not checked in).
_config.yml serves _vendor/ as static files (html_static_path) and points mathjax_path and
nb_ipywidgets_js at them. `make book` and `make browser` run this first; it does nothing
when _vendor/ already holds these versions.

    python tools/fetch_assets.py [DEST]        (DEST defaults to _vendor next to this repo)
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import sys
import tarfile
import urllib.request
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"

# name, version, sha512 integrity (from the registry), files to keep: {prefix in the tarball:
# folder under DEST}. A prefix ending in "/" copies a folder.
PACKAGES = [
    ("mathjax", "3.2.2",
     "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
     # the combined TeX + MathML input, CommonHTML output component that Sphinx loads by
     # default, and what it loads on demand: TeX extensions, fonts, menu, accessibility
     {"package/es5/tex-mml-chtml.js": "mathjax/tex-mml-chtml.js",
      "package/es5/input/": "mathjax/input/", "package/es5/output/chtml/": "mathjax/output/chtml/",
      "package/es5/output/chtml.js": "mathjax/output/chtml.js", "package/es5/ui/": "mathjax/ui/",
      "package/es5/a11y/": "mathjax/a11y/", "package/es5/sre/": "mathjax/sre/",
      "package/es5/adaptors/": "mathjax/adaptors/", "package/LICENSE": "mathjax/LICENSE"}),
    ("requirejs", "2.3.8",
     "sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw==",
     {"package/require.js": "requirejs/require.js"}),
    ("@jupyter-widgets/html-manager", "1.0.15",
     "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
     # embed-amd.js renders embedded widget state (ipywidgets 8); the fonts are its icons
     {"package/dist/embed-amd.js": "html-manager/embed-amd.js",
      **{f"package/dist/{f}": f"html-manager/{f}" for f in (
          "23f19bb08961f37aaf69.eot", "77206a6bb316fa0aded5.eot", "9bbb245e67a133f6e486.eot",
          "2f517e09eb2ca6650ff5.svg", "4689f52cc96215721344.svg", "7a8b4f130182d19a2d7c.svg",
          "491974d108fe4002b2aa.ttf", "527940b104eb2ea366c8.ttf", "be9ee23c0c6390141475.ttf",
          "2285773e6b4b172f07d9.woff", "bb58e57c48a3e911f15f.woff", "eeccf4f66002c6f2ba24.woff",
          "1551f4f60c37af51121f.woff2", "7a3337626410ca2f4071.woff2",
          "d878b0a6a1144760244f.woff2")},
      "package/LICENSE": "html-manager/LICENSE"}),
]


def tarball_url(name: str, version: str) -> str:
    return f"{REGISTRY}/{name}/-/{name.split('/')[-1]}-{version}.tgz"


def fetch(name: str, version: str, integrity: str, retries: int = 3) -> bytes:
    algo, _, expected = integrity.partition("-")
    url = tarball_url(name, version)
    for attempt in range(retries):
        try:
            with urllib.request.urlopen(url, timeout=120) as r:
                data = r.read()
            break
        except OSError as exc:  # a flaky connection: try again, then give up loudly
            if attempt == retries - 1:
                raise SystemExit(f"could not download {url}: {exc}")
    got = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if got != expected:
        raise SystemExit(f"{url}: {algo} integrity mismatch (expected {expected}, got {got})")
    return data


def unpack(data: bytes, files: dict, dest: Path) -> int:
    n = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            for prefix, target in files.items():
                if member.name == prefix or (prefix.endswith("/")
                                             and member.name.startswith(prefix)):
                    rel = target + member.name[len(prefix):] if prefix.endswith("/") else target
                    out = dest / rel
                    if ".." in Path(rel).parts:
                        raise SystemExit(f"refusing to write outside {dest}: {rel}")
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(tar.extractfile(member).read())
                    n += 1
    return n


def main(dest: Path) -> None:
    stamp = dest / "versions.json"
    # what is unpacked, not only which versions: a changed file map also refetches
    want = {name: [version, files] for name, version, _, files in PACKAGES}
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        stamp.touch()  # up to date: tell make so
        return
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for name, version, integrity, files in PACKAGES:
        n = unpack(fetch(name, version, integrity), files, tmp)
        print(f"{name}@{version}: {n} files")
    (tmp / "versions.json").write_text(json.dumps(want, indent=1))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[1] / "_vendor"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
