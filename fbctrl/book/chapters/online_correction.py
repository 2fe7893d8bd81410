"""What the chapter "Online correction by the controller" (``book/online_correction.ipynb``) shows.

* :func:`load` -- the frozen networks on the three kinds of reaches, controller on and off: losses per
  seed, error traces, and the first seed's hand paths.
* :func:`glue_losses` -- the numbers and verdicts of the prose.
* :func:`loss_table` -- the table of losses over seeds.
* :func:`explorer_networks` -- the networks the explorer offers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...analysis import online
from ...core.task import TaskConfig
from ...experiments import stats, verdicts
from ...fmt import fmt_pm, md_table
from .. import data
from ..glue import glue_int, glue_pm, glue_text

__all__ = ["Chapter", "load", "glue_losses", "loss_table", "explorer_networks"]


@dataclass
class Chapter:
    """``losses[kind][(condition, controller_on)]``: loss per seed; ``errs[(kind, condition, on)]``: error
    traces; ``hands[(condition, on)]``, ``refs[condition]``: first seed's hand paths and references."""

    P: object
    fb: dict
    nofb: dict
    conds: list
    losses: dict
    errs: dict
    hands: dict
    refs: dict

    @property
    def titles(self) -> dict:
        return {c.name: c.label for c in self.conds}

    @property
    def targets(self) -> dict:
        """Per condition, the reference's last point (the target reached)."""
        return {c.name: self.refs[c.name][-1] for c in self.conds}


def _traces(fb: dict, nofb: dict, conds, task_cfg: TaskConfig):
    errs, hands, refs = {}, {}, {}
    for kind, nets in (("fb", fb), ("nofb", nofb)):
        for c in conds:
            for on in ((True, False) if kind == "fb" else (True,)):
                if nets:
                    tr = online.seed_traces(nets, c, controller_on=on)
                    errs[(kind, c.name, on)] = tr["err"]
                    if kind == "fb":
                        hands[(c.name, on)] = tr["hand"][0, :, :task_cfg.n_targets]  # first seed, one trial per target
                        refs[c.name] = tr["ref"][:, :task_cfg.n_targets]
    return errs, hands, refs


def load(P, task_cfg: TaskConfig = TaskConfig()) -> Chapter:
    """Run the frozen networks (with and without feedback) on every condition, for validated ``P``."""
    fb = data.networks(P, "fb", required=True)
    nofb = data.networks(P, "nofb")
    n_units = next(iter(fb.values())).cfg.n
    repeats = P.repeats or P.profile.eval_repeats
    conds = online.conditions(n_units, rotation_deg=P.rotation_deg, repeats=repeats, task_cfg=task_cfg)
    losses = {"fb": online.loss_table(fb, conds), "nofb": online.loss_table(nofb, conds)}
    errs, hands, refs = _traces(fb, nofb, conds, task_cfg)
    return Chapter(P, fb, nofb, conds, losses, errs, hands, refs)


def glue_losses(ch: Chapter) -> None:
    """Counts, and per condition: losses on / off, their ratio, the verdict (log ratio off / on, loss band), without feedback."""
    glue_text("rot", f"{ch.P.rotation_deg:g}")
    glue_int("n_fb", len(ch.fb))
    glue_int("n_nofb", len(ch.nofb))
    glue_int("n_trials", len(ch.conds[0].x0))
    glue_text("example_seed", next(iter(ch.fb)))
    for c in ch.conds:
        on, off = ch.losses["fb"][(c.name, True)], ch.losses["fb"][(c.name, False)]
        glue_pm(f"{c.name}_on", on)
        glue_pm(f"{c.name}_off", off)
        glue_pm(f"{c.name}_ratio", off / on)
        glue_text(f"{c.name}_verdict", stats.verdict_text(np.log(off / on), band=verdicts.BANDS["loss"]))  # off / on, per seed
        if ch.nofb:
            glue_pm(f"{c.name}_nofb", ch.losses["nofb"][(c.name, True)])
        else:
            glue_text(f"{c.name}_nofb", "n/a")


def loss_table(ch: Chapter):
    """Per kind of reach: loss with the controller on, off, their ratio, and without feedback."""
    rows = []
    for c in ch.conds:
        on, off = ch.losses["fb"][(c.name, True)], ch.losses["fb"][(c.name, False)]
        rows.append([c.label, fmt_pm(on), fmt_pm(off), fmt_pm(off / on),
                     fmt_pm(ch.losses["nofb"][(c.name, True)]) if ch.nofb else "n/a"])
    return md_table(["reaches", "with feedback, controller on", "with feedback, controller off", "off / on",
                     "without feedback"], rows)


def explorer_networks(ch: Chapter) -> dict:
    """The explorer's networks, by label: every seed with feedback, then every seed without."""
    nets = {f"with feedback, seed {s}": n for s, n in ch.fb.items()}
    nets.update({f"without feedback, seed {s}": n for s, n in ch.nofb.items()})
    return nets
