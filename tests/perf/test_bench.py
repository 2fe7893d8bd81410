"""The benchmark instruments (fbctrl.perf.bench) at tiny sizes: every floor returns positive
finite seconds; the JSON of ``bench adapt`` and ``bench pretrain`` keeps the keys of before and
adds each floor and ratio (K_ratio = K / K_floor); ``bench memory`` returns its table. Properties
only, never timings."""

import json
import math

import pytest
import torch

from fbctrl.__main__ import main
from fbctrl.perf import bench

torch.set_num_threads(1)

TINY = dict(n=12, T=12)
ADAPT_KEYS_BEFORE = {"rflo_c", "rflo", "bptt_c", "rflo_align", "bptt_c_batch32", "bptt_c_current",
                     "bptt_c_batch32_current", "wrec_newton_step", "wrec_newton_iters", "device"}
PRETRAIN_KEYS_BEFORE = {"seconds_per_batch", "seconds_per_batch_per_seed", "seeds", "gflops", "peak_gflops", "ratio",
                        "device", "threads", "machine"}


def positive_finite(x):
    return isinstance(x, float) and math.isfinite(x) and x > 0


@pytest.mark.parametrize("floor, R, kw", [
    (bench.floor_bptt, 1, {}), (bench.floor_bptt, 3, {}),
    (bench.floor_rflo, 1, {}), (bench.floor_rflo, 3, {}),
    (bench.floor_pretrain_step_shapes, 2, {"batch": 4}),
])
def test_floor_returns_positive_finite_seconds(floor, R, kw):
    assert positive_finite(floor(8, 5, R, "cpu", 1, **kw))


def test_wrec_newton_floor_returns_positive_finite_seconds_on_one_thread_and_restores_threads():
    before = torch.get_num_threads()
    assert positive_finite(bench.floor_wrec_newton(8, 5, 3, "cpu"))
    assert torch.get_num_threads() == before


def test_step_shapes_flops_counts_the_step_products():
    n, T, R, B, m = 10, 3, 2, 4, 16   # m = n + n_in + 3
    assert bench.step_shapes_flops(n, T, R, B) == 2 * R * (T * B * m * n + T * B * n * n + (n + 2) * T * B * m)


def test_bench_adapt_json_has_floors_and_ratios(capsys, tmp_path):
    out = tmp_path / "adapt.json"
    assert main(["bench", "adapt", "--n", "12", "--T", "12", "--repeats", "1", "--json", "--save", str(out)]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ADAPT_KEYS_BEFORE <= res.keys()
    for k in ("bptt_c", "rflo_c", "bptt_c_batch32", "wrec_newton_step"):
        assert positive_finite(res[k]) and positive_finite(res[f"{k}_floor"])
        assert res[f"{k}_ratio"] == pytest.approx(res[k] / res[f"{k}_floor"], rel=1e-12)
    assert (res["n"], res["T"]) == (12, 12)
    assert positive_finite(res["adapt_tests"])          # the tests that follow every trial
    saved = json.loads(out.read_text())
    assert saved["benchmark"] == "adapt" and saved["result"] == res and "commit" in saved


def test_bench_pretrain_json_has_step_shape_ratio():
    res = bench.bench_pretrain("cpu", batches=1, seeds=1, batch_size=4, repeats=1, peak_sizes=(32,), **TINY)
    json.dumps(res)
    assert PRETRAIN_KEYS_BEFORE | {"ratio_step_shapes", "step_shapes_gflops", "step_shapes_seconds"} <= res.keys()
    assert res["ratio"] == pytest.approx(res["gflops"] / res["peak_gflops"], rel=1e-12)
    assert res["ratio_step_shapes"] == pytest.approx(res["gflops"] / res["step_shapes_gflops"], rel=1e-12)
    assert all(positive_finite(res[k]) for k in ("step_shapes_seconds", "step_shapes_gflops", "ratio_step_shapes"))


def test_bench_memory_table(monkeypatch, capsys):
    # every point in this process (the fresh process is tested below): the table's structure
    monkeypatch.setattr(bench, "_fresh_memory_point", bench.memory_point)
    res = bench.bench_memory("cpu", ns=(8, 12), Ts=(6, 12), batch=4, runs=2, **TINY)
    json.dumps(res)
    assert set(res["peak"]) == set(bench.MEMORY_KERNELS) | {"bptt_c_batch32_per_run"}
    for k in bench.GROWTH_KERNELS:
        assert len(res["by_n"][k]) == 2 and len(res["by_T"][k]) == 2
        assert all(isinstance(b, int) and b >= 0 for b in res["by_n"][k] + res["by_T"][k])
        for axis in ("n", "T"):
            assert set(res["growth"][k][axis]) == {"ratio", "size_ratio", "exponent"}
    bench._print_memory(res)
    assert "O(T n + n^2)" in capsys.readouterr().out


def test_memory_point_in_a_fresh_process():
    p = bench._fresh_memory_point("bptt_c", 12, 12, "cpu", 4, 2)
    assert (p["kernel"], p["n"], p["T"]) == ("bptt_c", 12, 12)
    assert isinstance(p["bytes"], int) and p["bytes"] >= 0 and p["method"]


def test_growth_between_the_two_largest_sizes():
    g = bench._growth([100, 200, 400], [5, 10, 40])
    assert g["ratio"] == 4 and g["size_ratio"] == 2 and g["exponent"] == pytest.approx(2.0)
    assert bench._growth([100, 200], [0, 10])["exponent"] is None
    assert bench._growth([100], [10])["ratio"] is None


def test_cpu_id_names_family_model_and_widest_vector_instructions():
    zen5 = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\n" \
           "flags\t\t: fpu sse2 avx avx2 avx512f avx512bw\n\nprocessor\t: 1\ncpu family\t: 99\n"
    assert bench.cpu_id(zen5) == "family 26 model 2, AVX-512"          # the first processor's fields
    assert bench.cpu_id("cpu family : 23\nmodel : 49\nflags : sse2 avx avx2 fma\n") == "family 23 model 49, AVX2"
    assert bench.cpu_id("model name : some ARM board\nFeatures : neon\n") == ""
    assert isinstance(bench.cpu_id(), str)
