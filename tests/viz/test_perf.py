"""The Performance chapter's tables and figures (fbctrl.viz.perf): they accept files saved before
the floors existed, and the before/after table takes medians and spreads per side."""

import pytest

from fbctrl.viz import perf as perfplots


def _saved(benchmark, result, name):
    return {"benchmark": benchmark, "result": {"device": "cpu", **result}, "file": name, "cpu": "cpu", "cores": 2}


def test_chapter_tables_accept_files_without_floors():
    old = [_saved("adapt", {"bptt_c": 0.3, "rflo_c": 0.02, "bptt_c_batch32": 0.25}, "a_old.json"),
           _saved("pretrain", {"seconds_per_batch_per_seed": 0.3, "ratio": 0.5}, "p_old.json")]
    new = [_saved("adapt", {"bptt_c": 0.3, "bptt_c_floor": 0.1, "bptt_c_ratio": 3.0}, "a_new.json"),
           _saved("pretrain", {"seconds_per_batch_per_seed": 0.3, "ratio": 0.5, "ratio_step_shapes": 0.8}, "p.json")]
    es = perfplots.floor_entries(old + new)
    by = {(e["file"], e["key"]): e for e in es}
    assert by[("a_old.json", "bptt_c")]["ratio"] is None and by[("p_old.json", "pretrain_step_shapes")]["floor"] is None
    assert by[("a_new.json", "bptt_c")]["ratio"] == 3.0
    assert by[("p.json", "pretrain_squares")]["ratio"] == pytest.approx(2.0)
    assert by[("p.json", "pretrain_step_shapes")]["floor"] == pytest.approx(0.24)
    assert "not measured in this file" in perfplots.floor_table(old).data
    assert perfplots.plot_floors(old[:1]) is None and perfplots.plot_floors(old + new) is not None
    assert "bench memory" in perfplots.memory_table(None).data and perfplots.plot_memory(None) is None
    with_id = {**new[0], "cpu": "AMD EPYC", "cpu_id": "family 26 model 2, AVX-512", "file": "z.json"}
    assert "AMD EPYC (family 26 model 2, AVX-512), 2 threads" in perfplots.floor_table([with_id]).data


def test_before_after_table_takes_medians_and_spreads_per_side():
    ab = [_saved("adapt", {"bptt_c": t, "bptt_c_floor": 0.05, "bptt_c_ratio": t / 0.05}, f"{side}_adapt_cpu_{i}.json")
          for side, ts in (("before", (0.18, 0.17, 0.19)), ("after", (0.14, 0.15, 0.13))) for i, t in enumerate(ts)]
    es = {(e["key"], e["side"]): e for e in perfplots.before_after(ab + [_saved("adapt", {"bptt_c": 1.0}, "x.json")])}
    assert sorted(es[("bptt_c", "before")]["ratios"]) == pytest.approx([3.4, 3.6, 3.8])
    assert len(es[("bptt_c", "after")]["times"]) == 3
    md = perfplots.before_after_table(ab).data
    assert "3.60 [3.40–3.80] (n 3)" in md and "2.80 [2.60–3.00] (n 3)" in md
