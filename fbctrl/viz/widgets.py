"""Interactive explorers for the book (ipywidgets).

:func:`trajectory_explorer` runs one pre-trained network on one centre-out reach and shows the
hand path and the position error over the trial; the reader picks the network, the target, the
visuomotor rotation, a push on/off, the controller on/off and the feedback delay. The figure is
drawn into an ``ipywidgets.Image`` (PNG bytes), so it needs a running kernel to change; the
notebook also shows the default state as an ordinary figure (:func:`explorer_figure`), which is
what the static HTML page shows.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch

from ..analysis.online import single_trial, trial_traces
from ..core.model import Network, draw_x0
from ..core.task import TaskConfig, centre_out_reaches
from ..learning.adapt import TEST_X0_SEED, RunSpec, adapt, initial_test_losses, paper_lr
from . import plots
from .chapters.adaptation import plot_explorer

__all__ = ["ExplorerState", "explorer_figure", "trajectory_explorer", "TrajectoryExplorer"]


@dataclass
class ExplorerState:
    """One setting of the explorer."""

    network: str = ""
    target: int = 1
    rotation_deg: float = 30.0
    push: bool = False
    controller_on: bool = True
    delay: int = 0


def explorer_figure(net: Network, state: ExplorerState, *, task_cfg: TaskConfig = TaskConfig(),
                    title: str | None = None, compare_off: bool = True):
    """Hand path and position error of ``net`` on one reach set by ``state``. With
    ``compare_off`` the same reach with the controller switched the other way is drawn dashed
    (grey) for comparison."""

    tr, x0, tgt = single_trial(task_cfg, net.cfg.n, target=state.target, rotation_deg=state.rotation_deg,
                               push=state.push)
    main = trial_traces(net, tr, x0, controller_on=state.controller_on, delay=state.delay)
    other = trial_traces(net, tr, x0, controller_on=not state.controller_on, delay=state.delay) if compare_off else None
    t = plots.time_axis(task_cfg.T, task_cfg.dt)
    name = lambda on: "controller on" if on else "controller off"  # noqa: E731
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(plots.FULL_WIDTH, 3.8), gridspec_kw={"width_ratios": [1, 1.35]})
    col = plots.COLORS["on"]
    a0.plot(main["ref"][:, 0, 0], main["ref"][:, 0, 1], color=plots.COLORS["target"], lw=0.9, ls=":",
            label="reference path")
    a0.plot(main["hand"][:, 0, 0], main["hand"][:, 0, 1], color=col, ls=plots.LS["on" if state.controller_on else "off"],
            label=f"hand, {name(state.controller_on)}")
    if other is not None:
        a0.plot(other["hand"][:, 0, 0], other["hand"][:, 0, 1], color=plots.COLORS["grey"],
                ls=plots.LS["off" if state.controller_on else "on"], label=f"hand, {name(not state.controller_on)}")
    a0.plot(*tgt, "o", color=plots.COLORS["target"], mfc="none", ms=7, label="target")
    a0.plot(0, 0, "s", color=plots.COLORS["target"], ms=3)
    r = task_cfg.centre_out_radius * 1.6
    a0.set_xlim(-r, r)
    a0.set_ylim(-r, r)
    a0.set_aspect("equal")
    plots.label(a0, "x position (a.u.)", "y position (a.u.)", "hand path")
    a1.plot(t, main["err"][:, 0], color=col, ls=plots.LS["on" if state.controller_on else "off"],
            label=f"{name(state.controller_on)} (loss {main['loss'][0]:.3g})")
    if other is not None:
        a1.plot(t, other["err"][:, 0], color=plots.COLORS["grey"], ls=plots.LS["off" if state.controller_on else "on"],
                label=f"{name(not state.controller_on)} (loss {other['loss'][0]:.3g})")
    push_txt = ", pushed" if state.push else ""
    if state.push:
        k = np.flatnonzero(tr.push[:, 0].abs().sum(-1).numpy())
        a1.axvspan((k[0] + 1) * task_cfg.dt, (k[-1] + 1) * task_cfg.dt, color=plots.COLORS["push"], alpha=0.25,
                   lw=0, label="push")
    plots.label(a1, "time (s)", "position error |e| (a.u.)",
                f"target {state.target}, rotation {state.rotation_deg:g}°{push_txt}, delay {state.delay} steps",
                legend=True, ncol=2)
    if title:
        fig.suptitle(title)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


@dataclass
class TrajectoryExplorer:
    """The widget and its state; display it in a notebook cell (``explorer`` as the last line)."""

    nets: dict[str, Network]
    task_cfg: TaskConfig = field(default_factory=TaskConfig)
    state: ExplorerState = field(default_factory=ExplorerState)

    def __post_init__(self):
        if not self.nets:
            raise ValueError("trajectory_explorer needs at least one network")
        if self.state.network not in self.nets:
            self.state.network = next(iter(self.nets))
        s, c = self.state, self.task_cfg
        style = {"description_width": "initial"}
        self.controls = {
            "network": W.Dropdown(options=list(self.nets), value=s.network, description="network", style=style),
            "target": W.Dropdown(options=[(f"{i}: {i * 360 // c.n_targets}°", i) for i in range(c.n_targets)],
                                 value=s.target, description="target", style=style),
            "rotation_deg": W.FloatSlider(value=s.rotation_deg, min=-90, max=90, step=5,
                                          description="rotation (°)", style=style, continuous_update=False),
            "push": W.Checkbox(value=s.push, description="push (mid-reach)", indent=False),
            "controller_on": W.Checkbox(value=s.controller_on, description="controller on", indent=False),
            "delay": W.IntSlider(value=s.delay, min=0, max=20, step=1, description="feedback delay (steps)",
                                 style=style, continuous_update=False),
        }
        self.image = W.Image(value=self._render(), format="png", layout=W.Layout(max_width="100%"))
        for k, w in self.controls.items():
            w.observe(self._on_change, names="value")
        ctl = self.controls
        self.widget = W.VBox([
            W.HBox([ctl["network"], ctl["target"], ctl["push"], ctl["controller_on"]]),
            W.HBox([ctl["rotation_deg"], ctl["delay"]]),
            self.image,
        ])

    def _render(self) -> bytes:
        return _png(explorer_figure(self.nets[self.state.network], self.state, task_cfg=self.task_cfg))

    def _on_change(self, change):
        for k, w in self.controls.items():
            setattr(self.state, k, w.value)
        self.image.value = self._render()

    def _repr_mimebundle_(self, **kw):
        bundle = self.widget._repr_mimebundle_(**kw)
        # a short, stable plain-text form (the widget's own repr embeds the PNG bytes)
        bundle["text/plain"] = "Trajectory explorer (interactive: needs a running Jupyter kernel)"
        return bundle


def trajectory_explorer(nets: dict[str, Network], *, task_cfg: TaskConfig = TaskConfig(),
                        state: ExplorerState | None = None) -> TrajectoryExplorer:
    """An explorer over ``nets`` (``{"fb seed 0": net, ...}``), starting from ``state``."""
    return TrajectoryExplorer(nets, task_cfg, state or ExplorerState())


# ---------------------------------------------------------------------------------------------
# Adaptation explorer (a short live run on one network)
# ---------------------------------------------------------------------------------------------

@dataclass
class ExploreState:
    network: str = ""
    rule: str = "rflo"
    controller_on: bool = True
    lr: float | None = None       # None: the paper's rate for the condition
    rotation_deg: float = 30.0
    trials: int = 20
    seed: int = 0                 # target sequence and initial states

    def rate(self) -> float:
        return float(self.lr) if self.lr is not None else paper_lr(self.rule, self.controller_on)


def explore_run(net: Network, state: ExploreState, *, task_cfg: TaskConfig = TaskConfig()) -> dict:
    """Adapt one network for ``state.trials`` trials and return what the explorer draws:
    training and test losses per trial, the pre-adaptation test loss, and the hand paths to the 8
    rotated targets with the controller off before and after (test initial states)."""
    t0 = time.perf_counter()
    run = RunSpec(net_index=0, controller_on=state.controller_on, rotation_deg=state.rotation_deg, lr=state.rate(),
                  seed=state.seed)
    res = adapt(net, state.rule, [run], trials=state.trials, progress=False, on_divergence="mark",
                bptt_weights="current", task_cfg=task_cfg)
    base = centre_out_reaches(task_cfg, dtype=torch.float32).rotated(state.rotation_deg)
    x0 = draw_x0(net.cfg.n, (task_cfg.n_targets,), torch.Generator().manual_seed(TEST_X0_SEED), torch.float32)
    before = trial_traces(net, base, x0, controller_on=False)
    after = trial_traces(net.replace(W_rec=res.W_final[0].to(net.dtype)), base, x0, controller_on=False)
    init = initial_test_losses(net, state.rotation_deg, task_cfg=task_cfg)
    return {"state": state, "train_loss": res.records["train_loss"][0], "test_loss": res.records["test_loss"][0],
            "initial_test": float(init["test"][0]), "diverged": int(res.diverged[0]),
            "hand_before": before["hand"], "hand_after": after["hand"], "ref": before["ref"],
            "seconds": time.perf_counter() - t0}


class AdaptationExplorer:
    """ipywidgets front end of :func:`explore_run`: pick the network, rule, controller, learning
    rate, rotation and number of trials, press *run*. Needs a running kernel; the notebook also
    shows the default state as a static figure."""

    def __init__(self, nets: dict[str, Network], state: ExploreState | None = None, *, initial: dict | None = None,
                 task_cfg: TaskConfig = TaskConfig()):
        if not nets:
            raise ValueError("the adaptation explorer needs at least one network")
        self.nets, self.task_cfg = nets, task_cfg
        self.state = state or ExploreState()
        if self.state.network not in nets:
            self.state.network = next(iter(nets))
        s = self.state
        style = {"description_width": "initial"}
        self.controls = {
            "network": W.Dropdown(options=list(nets), value=s.network, description="network", style=style),
            "rule": W.ToggleButtons(options=[("RFLO", "rflo"), ("online BPTT", "bptt")], value=s.rule,
                                    description="rule", style=style),
            "controller_on": W.Checkbox(value=s.controller_on, description="controller on", indent=False),
            "lr": W.FloatLogSlider(value=s.rate(), base=10, min=-7, max=-3, step=0.25, description="learning rate",
                                   style=style, readout_format=".1e", continuous_update=False),
            "rotation_deg": W.FloatSlider(value=s.rotation_deg, min=-90, max=90, step=5, description="rotation (°)",
                                          style=style, continuous_update=False),
            "trials": W.IntSlider(value=s.trials, min=5, max=200, step=5, description="trials", style=style,
                                  continuous_update=False),
        }
        self.button = W.Button(description="run", button_style="primary")
        self.status = W.Label(value="")
        self.image = W.Image(value=self._render(initial), format="png", layout=W.Layout(max_width="100%"))
        self.button.on_click(self._on_run)
        for k in ("rule", "controller_on"):  # a new condition starts from the paper's rate
            self.controls[k].observe(self._paper_rate, names="value")
        c = self.controls
        self.widget = W.VBox([W.HBox([c["network"], c["rule"], c["controller_on"]]),
                              W.HBox([c["lr"], c["rotation_deg"], c["trials"]]),
                              W.HBox([self.button, self.status]), self.image])

    def _render(self, run: dict | None = None) -> bytes:

        run = run or explore_run(self.nets[self.state.network], self.state, task_cfg=self.task_cfg)
        fig = plot_explorer(run)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        return buf.getvalue()

    def _paper_rate(self, _=None):
        self.controls["lr"].value = paper_lr(self.controls["rule"].value, self.controls["controller_on"].value)

    def _on_run(self, _=None):
        for k, w in self.controls.items():
            setattr(self.state, k, w.value)
        self.status.value = "running ..."
        self.image.value = self._render()
        self.status.value = ""

    def _repr_mimebundle_(self, **kw):
        bundle = self.widget._repr_mimebundle_(**kw)
        bundle["text/plain"] = "Adaptation explorer (interactive: needs a running Jupyter kernel)"
        return bundle


def adaptation_explorer(nets: dict[str, Network], state: ExploreState | None = None, *, initial: dict | None = None,
                        task_cfg: TaskConfig = TaskConfig()) -> AdaptationExplorer:
    """An :class:`AdaptationExplorer` over ``nets`` (``{"seed 0": net, ...}``); ``initial``: the
    :func:`explore_run` result of ``state`` if already computed (drawn without running again)."""
    return AdaptationExplorer(nets, state, initial=initial, task_cfg=task_cfg)
