"""The built book reads offline and without console errors.

MathJax 3 is served with the book instead of from a CDN, so formulas typeset offline.
The files come from PyPI's ``django-static-mathjax`` (MathJax 3.2.2's ``es5`` build; a pip
install, no Node needed). Only what TeX input and CommonHTML output load is copied beside the
pages, into ``_static/mathjax``, and Sphinx's ``mathjax_path`` points there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

MATHJAX_ENTRY = "tex-mml-chtml.js"
# The entry script loads these at run time: TeX extensions, fonts, the menu and accessibility.
NEEDED = [MATHJAX_ENTRY, "input/tex", "input/mml", "output/chtml", "ui", "a11y"]


def es5_folder() -> Path:
    import mathjax  # the package django-static-mathjax installs; its files, no code

    folder = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (folder / MATHJAX_ENTRY).exists():
        raise RuntimeError(f"MathJax's {MATHJAX_ENTRY} not found in {folder}; "
                           "pip install django-static-mathjax==3.2.2.1")
    return folder


def copy_mathjax(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source, target = es5_folder(), Path(app.outdir) / "_static" / "mathjax"
    for name in NEEDED:
        if (source / name).is_dir():
            shutil.copytree(source / name, target / name, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, target / name)


def drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    """Keep each script once: Jupyter Book registers sphinx-thebe's inline script twice, and
    its second ``const THEBE_JS_URL`` is a SyntaxError in every page's console."""
    seen, kept = set(), []
    for script in context.get("script_files", []):
        # An inline script's filename is None or "" depending on who added it.
        key = (getattr(script, "filename", script) or "", getattr(script, "attributes", {}).get("body"))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app):
    es5_folder()  # fail at the start of a build, not after it
    app.config.mathjax_path = f"mathjax/{MATHJAX_ENTRY}"
    app.connect("build-finished", copy_mathjax)
    app.connect("html-page-context", drop_repeated_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
