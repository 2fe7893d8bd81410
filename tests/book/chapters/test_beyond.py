"""The introduction's sentence on the extension (``fbctrl.book.chapters.beyond.headline``): it
names the families with their pre-trained networks and reports only the changes the four-word rule
judges material."""

from __future__ import annotations

from types import SimpleNamespace

from fbctrl.book.chapters import beyond as chapter
from fbctrl.core.spec import NetworkSpec
from fbctrl.experiments import beyond
from fbctrl.experiments.stats import Verdict


def _row(figure, n, word, short="", p=0.001, variant_word=None, published_word="agrees"):
    """A family-table row; ``word`` the change's verdict (None: not compared), ``variant_word``
    the variant's own (for rows compared with no published network), each with p ``p``."""
    eff = SimpleNamespace(n=n, p_value=p)
    change = None if word is None else SimpleNamespace(effect=eff, verdict=Verdict(word))
    variant = SimpleNamespace(effect=eff, verdict=Verdict(variant_word or "inconclusive"))
    return SimpleNamespace(figure=figure, change=change, variant=variant, key=figure.lower().replace(" ", "_"),
                           published=SimpleNamespace(effect=SimpleNamespace(n=5), verdict=Verdict(published_word)),
                           short=short or f"claim of {figure}")


def _fake(monkeypatch, fams, rows, trained):
    monkeypatch.setattr(beyond, "find_families", lambda cfg: {f: NetworkSpec.parse(f) for f in fams})
    monkeypatch.setattr(beyond, "family_table", lambda cfg, fam: rows[fam])
    monkeypatch.setattr(beyond, "sidecars", lambda folder: iter(
        [(NetworkSpec.parse(f), s, {}) for f, k in trained.items() for s in range(k)]))


def test_headline_lists_only_material_changes_that_survive_the_correction(monkeypatch):
    """Changes judged agrees or disagrees are counted; those that survive Benjamini-Hochberg over
    their family's change column are named, grouped by claim across families; n < 2 and rows not
    compared are not judged; on another task, the verdicts opposite to the published networks'
    are named."""
    cfg = chapter.config()
    _fake(monkeypatch, ["fb_d5", "fb0.3", "lc_fb"],
          {"fb_d5": [_row("Fig 1a", 3, "disagrees", "online correction"),
                     _row("Fig 4a", 3, "agrees", "Jacobian norm, on < off"),
                     _row("Fig 4b", 3, "negligible"), _row("Fig 2c", 3, "inconclusive", p=0.4)],
           "fb0.3": [_row("Fig 1a", 3, "disagrees", "online correction", p=0.002),
                     _row("Fig 5a", 3, "disagrees", p=0.04),          # BH over 3 tests: 0.04 -> 0.06
                     _row("Fig 5b", 1, "disagrees"), _row("Fig 3b", 3, None), _row("Fig 2c", 3, "inconclusive", p=0.5)],
           "lc_fb": [_row("Fig 3b", 3, None, "loss RFLO+c < RFLO", variant_word="disagrees"),
                     _row("Fig 4c", 3, None, "global alignment", variant_word="disagrees", published_word="disagrees"),
                     _row("Fig 5b", 1, None, variant_word="disagrees")]},
          {"fb_d5": 3, "fb0.3": 3, "lc_fb": 3})
    text = chapter.headline(cfg)
    assert text.startswith("So far 3 families are pre-trained (3 networks each: fb_d5, fb0.3, lc_fb); of 7 effects "
                           "compared with the published networks of the same seeds, 4 change by the four-word rule, "
                           "and 3 of them after correcting each family's comparisons for many tests: ")
    # a change every compared family shares is named; the others are counted
    assert "Fig 1a (online correction) is smaller with every variant compared (fb_d5, fb0.3), and 1 other in " \
           "some variants only (the chapter's tables)" in text
    assert "Fig 4a" not in text and "Fig 5a" not in text and "Fig 4b" not in text and "Fig 2c" not in text
    assert text.endswith("; on the limit cycle (no change computed: another task), these verdicts are the opposite "
                         "of the published networks' (after the same correction): Fig 3b (loss RFLO+c < RFLO) "
                         "disagrees with lc_fb (published: agrees).")


def test_headline_names_each_change_by_claim_where_no_family_shares_one(monkeypatch):
    cfg = chapter.config()
    _fake(monkeypatch, ["fb_d5", "fb0.3"],
          {"fb_d5": [_row("Fig 1a", 3, "disagrees", "online correction"), _row("Fig 4a", 3, "agrees", "Jacobian")],
           "fb0.3": [_row("Fig 1a", 3, "negligible", "online correction"), _row("Fig 4a", 3, "agrees", "Jacobian")]},
          {"fb_d5": 3, "fb0.3": 3})
    assert chapter.headline(cfg).endswith("4 effects compared with the published networks of the same seeds, 3 change "
                                          "by the four-word rule, and 3 of them after correcting each family's "
                                          "comparisons for many tests: Fig 4a (Jacobian) is larger with every variant "
                                          "compared (fb_d5, fb0.3), and 1 other in some variants only (the chapter's "
                                          "tables).")
    _fake(monkeypatch, ["fb_d5", "fb0.3"],
          {"fb_d5": [_row("Fig 1a", 3, "disagrees", "online correction"), _row("Fig 4a", 3, "agrees", "Jacobian")],
           "fb0.3": [_row("Fig 1a", 3, "negligible", "online correction")]}, {"fb_d5": 3, "fb0.3": 3})
    assert chapter.headline(cfg).endswith("comparisons for many tests: Fig 1a (online correction) is smaller with "
                                          "fb_d5; Fig 4a (Jacobian) is larger with fb_d5.")


def test_headline_says_when_nothing_can_be_judged(monkeypatch):
    cfg = chapter.config()
    _fake(monkeypatch, ["fb_d10"], {"fb_d10": [_row("Fig 4a", 1, "agrees")]}, {"fb_d10": 1})
    assert chapter.headline(cfg) == ("So far 1 family is pre-trained (fb_d10: 1 network); no change against the "
                                     "published networks can be judged yet (it needs two networks a family).")
    _fake(monkeypatch, ["fb_d10", "fb0.1"], {"fb_d10": [_row("Fig 4a", 3, "negligible")],
                                             "fb0.1": [_row("Fig 4a", 2, "inconclusive", p=0.3)]},
          {"fb_d10": 3, "fb0.1": 2})
    assert chapter.headline(cfg) == ("So far 2 families are pre-trained (fb_d10: 3 networks, fb0.1: 2 networks); "
                                     "none of the 2 effects judged changes materially against the published networks.")
    _fake(monkeypatch, [], {}, {})
    assert chapter.headline(cfg) == "No network of the extension is pre-trained yet."


def test_pretraining_hours_are_per_network_and_span_the_networks(tmp_path):
    """Wall time per network: a sidecar's wall_time_s over the networks trained with it in lockstep;
    the range over the networks in hours, two significant figures; '—' where none is recorded."""
    import json
    paths = []
    for i, (secs, together) in enumerate([(7200.0, [0, 1]), (3240.0, [2]), (None, [3])]):
        pt = tmp_path / f"fb_d5_seed{i}.pt"
        meta = {"trained_together_with_seeds": together}
        if secs is not None:
            meta["wall_time_s"] = secs
        pt.with_suffix(".json").write_text(json.dumps(meta))
        paths.append(pt)
    assert chapter._hours_text(paths[:1]) == "1"            # 2 h for two networks
    assert chapter._hours_text(paths[:2]) == "0.9–1"        # 3240 s = 0.9 h
    assert chapter._hours_text(paths[2:]) == "—"


def test_unit_hours_sum_the_done_units_of_one_family(monkeypatch):
    """The design table's *units, h*: the one-core hours the done units of a family took, as each
    unit's file records them; units not done, and done units whose file does not say, add nothing;
    another family's units are not counted."""
    from fbctrl.experiments import paper
    units = [SimpleNamespace(family="fb_d5", name=n) for n in ("a", "b", "c", "d")]
    other = [SimpleNamespace(family="fb0.3", name="e")]
    monkeypatch.setattr(beyond, "groups", lambda cfg, include_done=False: [
        SimpleNamespace(units=units[:2]), SimpleNamespace(units=units[2:]), SimpleNamespace(units=other)])
    done = {"a", "b", "d", "e"}
    hours = {"a": 0.25, "b": float("nan"), "c": 9.0, "d": 0.5, "e": 7.0}
    monkeypatch.setattr(paper, "is_done", lambda cfg, u: u.name in done)
    monkeypatch.setattr(chapter, "unit_hours", lambda cfg, u: hours[u.name])
    assert chapter._progress(None, "fb_d5") == (3, 4, 0.75)
    assert chapter._progress(None, "fb0.3") == (1, 1, 7.0)
    assert [chapter._unit_hours_text(h) for h in (0.0, 0.001, 0.75, 12.345)] == ["0", "<0.1", "0.8", "12.3"]


def test_findings_give_each_variant_its_effect_and_its_change_in_words_of_the_change_verdict(monkeypatch):
    """The findings: the online-correction table has the published networks' Fig 1a effect once
    (mean [95% CI], n; no p), then each pre-trained family's, with the change said as the change's
    verdict reads (disagrees: smaller) or why it is not compared; a family not pre-trained is
    left out; then the limit cycle's adaptation ratios with their verdicts."""
    from scipy.stats import gmean

    from fbctrl.experiments.stats import paired_effect
    from fbctrl.experiments.verdicts import ClaimResult

    def res(ratios, word):      # per-seed ratios a / b, as a claim on the log scale reports them
        e = paired_effect(list(ratios), [1.0] * len(ratios), log=True)
        return ClaimResult("k", "Fig", "c", "as published", "", e, Verdict(word), tuple(range(len(ratios))))

    pub = res([7.0, 6.5, 7.5, 7.2, 6.8], "agrees")
    online = beyond.ONLINE_CLAIM.key

    def row(key, var, change=None, note=""):
        return SimpleNamespace(key=key, variant=var, published=pub, change=change, change_note=note)
    tables = {"fb_d5": [row(online, res([1.8, 1.9, 1.85], "agrees"), res([0.25, 0.27, 0.26], "disagrees"))],
              "lc_fb": [row(online, res([7.0, 8.0, 9.0], "agrees"), note="not compared: another task"),
                        row("final_loss_rflo_30", res([0.5, 0.52, 0.53], "disagrees"))]}
    monkeypatch.setattr(beyond, "find_families", lambda cfg: {f: NetworkSpec.parse(f) for f in tables})
    monkeypatch.setattr(beyond, "family_table", lambda cfg, fam: tables[fam])

    def cell(r):
        return chapter.format_cell(r).rsplit(", p ", 1)[0]
    assert cell(pub).startswith(f"{gmean([7.0, 6.5, 7.5, 7.2, 6.8]):.3g} [") and cell(pub).endswith("], n 5")
    d5 = tables["fb_d5"][0]
    assert chapter.online_rows(tables) == [
        ["published networks (0 ms, density 1)", cell(pub), "—"],
        ["delay 50 ms", cell(d5.variant), f"smaller: {chapter.format_cell(d5.change)}"],
        ["limit cycle", cell(tables["lc_fb"][0].variant), "not compared: another task"]]
    text = chapter.findings(chapter.config()).data
    assert f"RFLO over RFLO+c {cell(tables['lc_fb'][1].variant)} (disagrees)" in text
    assert "BPTT over BPTT+c" not in text                                # not measured: not said


def test_task_and_feedback_are_said_in_a_few_words():
    said = {f: chapter._task_feedback_text(NetworkSpec.parse(f)) for f in
            ("fb", "fb_d5", "fb_d10", "fb0.3", "fb0.1", "lc_fb", "lc_nofb", "fb0.3_d5")}
    assert said == {"fb": "reach, 0 ms, dense", "fb_d5": "reach, 50 ms delay", "fb_d10": "reach, 100 ms delay",
                    "fb0.3": "reach, density 0.3", "fb0.1": "reach, density 0.1", "lc_fb": "limit cycle, 0 ms, dense",
                    "lc_nofb": "limit cycle, no feedback", "fb0.3_d5": "reach, 50 ms delay, density 0.3"}
