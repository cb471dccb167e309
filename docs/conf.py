"""Sphinx configuration: numpydoc API reference, sphinx-gallery examples, Markdown pages (MyST)."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))
import skmm  # noqa: E402

project = "skmm"
author = "skmm developers"
release = version = skmm.__version__
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "sg_execution_times.rst"]
autosummary_generate = True
autodoc_default_options = {"inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
myst_heading_anchors = 3
intersphinx_mapping = {}  # offline builds: no inventories fetched
html_theme = "pydata_sphinx_theme"
html_static_path = []
templates_path = ["_templates"]
html_theme_options = {"navigation_with_keys": False}
# Examples run on tiny settings; SKMM_DOCS_RUN_EXAMPLES=0 skips running them.
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "/plot_" if os.environ.get("SKMM_DOCS_RUN_EXAMPLES", "1") == "1" else "^$",
    "download_all_examples": False,
    "remove_config_comments": True,
    "doc_module": ("skmm",),
    "backreferences_dir": "auto_examples",
}
suppress_warnings = ["config.cache"]
