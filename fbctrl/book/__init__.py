"""The book layer: what a chapter's notebook calls.

- :mod:`~fbctrl.book.params` the profiles and the declared table of notebook parameters;
- :mod:`~fbctrl.book.data` the networks a chapter reads and the shipped networks' runs from the store (or computed live);
- :mod:`~fbctrl.book.glue` numbers in the prose;
- :mod:`~fbctrl.book.runner` executes the notebooks (``python -m fbctrl.book run``);
- :mod:`~fbctrl.book.chapters` one module per chapter (the paper-protocol chapter's is
  :mod:`~fbctrl.book.chapters.paper_protocol`); :mod:`~fbctrl.book.colab` the first cell that makes
  a notebook run on Colab.

A notebook's set-up reads ``from fbctrl import book`` and then ``book.validate_params(...)``,
``book.setup_notebook()``, ``book.networks(P, "fb")``, ``book.glue_num(...)``: the names below
are those of the modules above, gathered here so that a chapter needs one import.
"""

from ..fmt import fmt_num, fmt_pm, md_table
from .data import checkpoints, load_curves, networks
from .glue import glue_figure, glue_html, glue_int, glue_num, glue_pm, glue_text
from .params import PROFILES, Params, Profile, get_profile, register_param, setup_notebook, validate_params

__all__ = ["PROFILES", "Profile", "Params", "get_profile", "validate_params", "register_param", "setup_notebook",
           "checkpoints", "networks", "load_curves", "glue_num", "glue_pm", "glue_int", "glue_text", "glue_html", "glue_figure",
           "fmt_num", "fmt_pm", "md_table"]
