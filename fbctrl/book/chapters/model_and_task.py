"""What the chapter "The model and the task" (``book/model_and_task.ipynb``) shows.

* :func:`load` -- the shipped networks with and without feedback control and their pre-training
  curves.
* :func:`glue_results` -- every number and sentence of the section on pre-training, glued under
  the keys the markdown cites.
* :func:`final_table` -- the final test losses per test set, with and without feedback control.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...core.checkpoint import load_checkpoint
from ...fmt import fmt_pm, md_table
from .. import data
from ..glue import glue_int, glue_pm, glue_text

__all__ = ["Chapter", "TESTS", "KINDS", "load", "glue_results", "final_table"]

# curve key of each test set evaluated during pre-training -> its name in the table
TESTS = {"eval_centre_out": "centre-out", "eval_centre_out_rot30": "centre-out, rotated 30°",
         "eval_random": "random", "eval_random_push": "random, pushed",
         "eval_random_ctrl_off": "random, controller off"}
KINDS = ("fb", "nofb")

# glue key of each with/without comparison -> the test set it compares
COMPARISONS = {"cmp_centre_out": "eval_centre_out", "cmp_push": "eval_random_push",
               "cmp_rot30": "eval_centre_out_rot30"}


@dataclass
class Chapter:
    """The checkpoints ``paths[kind]`` and the pre-training curves ``curves[kind]``
    (:func:`fbctrl.book.data.load_curves`; ``"nofb"`` absent without curves of such networks)."""

    P: object
    paths: dict[str, dict[int, Path]]
    curves: dict[str, dict]
    n_units: int

    @property
    def final(self) -> dict[str, dict[str, np.ndarray]]:
        """``{kind: {test key: per-seed test loss at the end of pre-training}}``."""
        return {kind: {k: c[k][:, -1] for k in TESTS} for kind, c in self.curves.items()}


def load(P) -> Chapter:
    """The networks of ``P.checkpoint_dir`` (those with feedback required, with their curves)."""
    paths = {"fb": data.checkpoints(P, "fb", required=True), "nofb": data.checkpoints(P, "nofb")}
    curves = {kind: data.load_curves(p) for kind, p in paths.items()}
    if curves["fb"] is None:
        raise ValueError(f"no training curves (.curve.npz) beside the fb checkpoints in {P.checkpoint_dir!r}")
    if curves["nofb"] is None:
        curves.pop("nofb")
    n_units = load_checkpoint(next(iter(paths["fb"].values()))).cfg.n
    return Chapter(P=P, paths=paths, curves=curves, n_units=n_units)


def compare(a, b) -> str:
    """How the mean of ``a`` compares with the mean of ``b``, as words between two numbers."""
    a, b = float(a.mean()), float(b.mean())
    return "lower than" if a < b else "higher than" if a > b else "equal to"


def _glue_sizes(ch: Chapter) -> None:
    c_fb = ch.curves["fb"]
    glue_int("n_units", ch.n_units)
    glue_int("n_fb", len(ch.paths["fb"]))
    glue_int("n_nofb", len(ch.paths["nofb"]))
    glue_int("batches", c_fb["batch"][-1])
    glue_int("eval_every", c_fb["eval_batch"][1] - c_fb["eval_batch"][0])


def _glue_final(ch: Chapter) -> None:
    final = ch.final
    for kind in KINDS:
        for k in TESTS:
            key = f"final_{k.removeprefix('eval_')}_{kind}"
            if kind in final:
                glue_pm(key, final[kind][k])
            else:
                glue_text(key, "n/a")
    fb = final["fb"]
    glue_pm("ctrl_off_ratio", fb["eval_random_ctrl_off"] / fb["eval_random"])
    glue_pm("cos_init", ch.curves["fb"]["eval_cos_Wfb_WoutT"][:, 0])
    glue_pm("cos_final", ch.curves["fb"]["eval_cos_Wfb_WoutT"][:, -1])
    for name, k in COMPARISONS.items():
        # without networks without feedback the sentence still reads: "... X, compared with the n/a ..."
        glue_text(name, compare(fb[k], final["nofb"][k]) if "nofb" in final else "compared with")


def glue_results(ch: Chapter) -> None:
    """Glue every number and sentence of the section on pre-training."""
    _glue_sizes(ch)
    _glue_final(ch)


def final_table(ch: Chapter):
    """The final test loss (mean ± SEM over seeds) per test set, with and without feedback control."""
    final = ch.final
    rows = [[name] + [fmt_pm(final[kind][k]) if kind in final else "n/a" for kind in KINDS]
            for k, name in TESTS.items()]
    return md_table(["test set (final)", "with feedback control", "without feedback control"], rows)
