"""The plan of the paper protocol: every unit in the order it runs, in groups (:class:`Group`),
with the units still to do (``python -m fbctrl paper --plan`` prints it).

Order (most important first, so a budget cuts the least important): the networks with
feedback, the network-level measures on them (minutes per network) and on the shipped networks,
the four conditions at 30 degrees under the published protocol, the networks without feedback
and their runs at 30 degrees, the paper-text rates at 30 degrees, the other rotations, the
sweep, and last the runs at each condition's best swept rate. A sweep whose best rate lies at an
edge of its grid is extended by one rate beyond that edge (up to ``max_sweep_extensions``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import network_units
from ..network_units import MEASURES, NetworkUnit, shipped_seeds
from ..protocol import CONDITIONS, Rule
from .adaptation import adapt_units
from .config import PaperConfig, Variant
from .files import is_done
from .pretrain import PretrainUnit
from .sweep import sweep_extension, sweep_grid, sweep_units

__all__ = ["Group", "plan"]


@dataclass
class Group:
    """Units that belong together (one stage of the order), in the order they run."""

    title: str
    units: list
    blocked: str | None = None      # why the group cannot run yet (e.g. the sweep is not finished)


def network_ready(cfg: PaperConfig, unit) -> bool:
    """The unit's network exists (a published one: its pre-training is finished)."""
    if unit.source == "published":
        return is_done(cfg, PretrainUnit(unit.kind, unit.seed))
    return unit.checkpoint(cfg).is_file()


def _network_group(cfg: PaperConfig, title: str, source: str, measures, include_done: bool) -> Group:
    """Network-level units of ``source`` (every configured seed for the published networks, the
    seeds on disk for the shipped ones), seed by seed; those whose network is not there yet are
    left out until it is, and the group waits when nothing else is left."""
    seeds = cfg.fb_seeds if source == "published" else shipped_seeds(cfg)
    units = [NetworkUnit(m, "fb", int(s), source) for s in seeds for m in measures]
    ready = [u for u in units if network_ready(cfg, u)]
    todo = [u for u in ready if not is_done(cfg, u)]
    pending = [u for u in units if not network_ready(cfg, u)]
    waiting = bool(pending) and not todo
    # with nothing to run now, the group lists (and its plan counts) the units that wait
    return Group(title, units if include_done else (todo or pending),
                 blocked="waits for pre-training" if waiting else None)


def _wait_for_networks(cfg: PaperConfig, g: Group) -> None:
    """Runs whose network is not pre-trained yet are left out until it is (the others run first);
    when only those are left the group waits for pre-training."""
    ready = [u for u in g.units if is_done(cfg, PretrainUnit(u.kind, u.seed))]
    if ready:
        g.units = ready
    elif g.blocked is None:
        g.blocked = "waits for pre-training"


def _sweep_and_best_groups(cfg: PaperConfig, r30: float, rest: list) -> tuple[list[Group], list, list[Group]]:
    """Per rule: its sweep, then its runs at the best rates (RFLO first: its runs are cheap and fill
    most fair cells). Returns the groups, (best-rate group, that rule's sweep units) pairs, and the
    groups that go last in the plan (BPTT at the other rotations at its 30 deg best rates: the
    most expensive fair cells)."""
    groups, waiting, last = [], [], []
    for rule in (Rule.RFLO, Rule.BPTT):
        conds = [c for c in CONDITIONS if c.rule is rule]
        sweep = [u for c in conds for u in sweep_units(cfg, c, sweep_grid(cfg, c) + sweep_extension(cfg, c))]
        name = rule.value.upper()
        groups.append(Group(f"learning-rate sweep at {cfg.sweep_rotation:g} deg, {name} and {name}+c", sweep))
        best = Group(f"fb, {r30:g} deg, {name} and {name}+c at their best swept rate",
                     adapt_units("fb", cfg.fb_seeds, [r30], conds, "best", cfg.trials))
        groups.append(best)
        waiting.append((best, sweep))
        if rest:
            other = Group(f"fb, {', '.join(f'{r:g}' for r in rest)} deg, {name} and {name}+c at their best rate of "
                          f"the {cfg.sweep_rotation:g} deg sweep", adapt_units("fb", cfg.fb_seeds, rest, conds, "best",
                                                                               cfg.trials))
            (groups if rule is Rule.RFLO else last).append(other)
            waiting.append((other, sweep))
    return groups, waiting, last


def _figure8_groups(cfg: PaperConfig) -> tuple[list[Group], list]:
    """Figure 8 at every rotation: per rotation of ``sweep_rotations_beyond`` and rule (RFLO first),
    its sweep (the 30 deg grid and seeds, extended at an edge like it), then the fair runs at that
    rotation's own best rate (``Variant.OWN_BEST``) on every network, so the held-out check
    (rates chosen on the sweep seeds, judged on the others) holds at every rotation."""
    groups, waiting = [], []
    for rule in (Rule.RFLO, Rule.BPTT):
        conds = [c for c in CONDITIONS if c.rule is rule]
        name = rule.value.upper()
        for rot in cfg.sweep_rotations_beyond:
            sweep = [u for c in conds
                     for u in sweep_units(cfg, c, sweep_grid(cfg, c, rot) + sweep_extension(cfg, c, rot), rot)]
            groups.append(Group(f"Figure 8: learning-rate sweep at {rot:g} deg, {name} and {name}+c", sweep))
            own = Group(f"fb, {rot:g} deg, {name} and {name}+c at the best rate of the {rot:g} deg sweep",
                        adapt_units("fb", cfg.fb_seeds, [rot], conds, "best", cfg.trials, Variant.OWN_BEST))
            groups.append(own)
            waiting.append((own, sweep))
    return groups, waiting


def plan(cfg: PaperConfig, *, include_done: bool = False) -> list[Group]:
    """Every group of the protocol in its order, with the units still to do (done ones dropped;
    ``include_done``: every unit of the protocol, done or not)."""
    fb_c = list(CONDITIONS)
    nofb_c = [c for c in CONDITIONS if not c.controller_on]
    r30 = [r for r in cfg.rotations if r == 30.0] or list(cfg.rotations[:1])
    rest = [r for r in cfg.rotations if r not in r30]
    groups = [
        Group("pre-train the networks with feedback", [PretrainUnit("fb", int(s)) for s in cfg.fb_seeds]),
        _network_group(cfg, "network measures (Figs 2c, 4a, 5b) of the published networks", "published",
                       [m for m in MEASURES if m not in ("wrec_newton", "matched_loop")], include_done),
        _network_group(cfg, "W_rec Newton and its damping scan, published networks", "published", ["wrec_newton"],
                       include_done),
        _network_group(cfg, "pre-trained weights, both controller settings: alignment with the loop kept in the "
                            "gradient and matched-state efficiency (Figs 4b, 4c, 5a)", "published", ["matched_loop"],
                       include_done),
        _network_group(cfg, "robustness: network measures of the networks pre-trained with pushes", "shipped",
                       network_units.SHIPPED_MEASURES, include_done),
        Group(f"fb, {r30[0]:g} deg, published protocol", adapt_units("fb", cfg.fb_seeds, r30, fb_c, "published", cfg.trials)),
        Group("pre-train the networks without feedback", [PretrainUnit("nofb", int(s)) for s in cfg.nofb_seeds]),
        Group(f"nofb, {cfg.nofb_rotation:g} deg, published protocol",
              adapt_units("nofb", cfg.nofb_seeds, [cfg.nofb_rotation], nofb_c, "published", cfg.trials)),
    ]
    for p in cfg.extra_protocols_30:
        groups.append(Group(f"fb, {r30[0]:g} deg, {p} rates", adapt_units("fb", cfg.fb_seeds, r30, fb_c, p, cfg.trials)))
    # The order is the verdict table's: first what its "as published" cells need, then the sweep and
    # the "fair" cells, then the robustness rows, and last BPTT at 40-60 deg (as published, then at
    # the 30 deg sweep's best rates), the most expensive runs and the last rows of Figure 3b.
    rflo_c = [c for c in fb_c if c.rule is Rule.RFLO]
    bptt_c = [c for c in fb_c if c.rule is Rule.BPTT]
    rest_txt = ", ".join(f"{r:g}" for r in rest)
    if rest:
        groups.append(Group(f"fb, {rest_txt} deg, published protocol, RFLO and RFLO+c",
                            adapt_units("fb", cfg.fb_seeds, rest, rflo_c, "published", cfg.trials)))
    sweep_groups, waiting, last = _sweep_and_best_groups(cfg, r30[0], rest)
    groups += sweep_groups
    groups.append(Group(f"robustness at {r30[0]:g} deg: integrated error from e_0 (published quirk)",
                        adapt_units("fb", cfg.fb_seeds, r30, fb_c, "published", cfg.trials, Variant.ERROR_START_E0)))
    groups.append(Group(f"robustness at {r30[0]:g} deg: online BPTT with the current weights",
                        adapt_units("fb", cfg.fb_seeds, r30, bptt_c, "published", cfg.trials, Variant.BPTT_CURRENT)))
    if rest:
        groups.append(Group(f"fb, {rest_txt} deg, published protocol, BPTT and BPTT+c",
                            adapt_units("fb", cfg.fb_seeds, rest, bptt_c, "published", cfg.trials)))
    groups += last
    beyond, waiting_beyond = _figure8_groups(cfg)
    groups += beyond
    waiting += waiting_beyond
    for g in groups:
        if not include_done and not (g.units and g.units[0].stage == "network"):   # network groups come filtered
            g.units = [u for u in g.units if not is_done(cfg, u)]
        if not include_done and g.units and g.units[0].stage in ("adapt", "sweep"):
            _wait_for_networks(cfg, g)
    for g, sweep in waiting:
        if g.units and any(not is_done(cfg, u) for u in sweep):
            g.blocked = "waits for the sweep"
    return groups
