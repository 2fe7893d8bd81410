"""``python -m fbctrl.book run --profile paper`` runs (or resumes) the paper's protocol before the
notebooks; the default profile and ``--no-protocol`` do not.

    python -m pytest -q tests/test_runner_paper.py
"""

from __future__ import annotations

from fbctrl.book import runner


def _record(monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "run_plan", lambda cfg, **kw: calls.append(("protocol", cfg.results_dir, kw["device"]))
                        or {"units_done": 0, "units_left": 0, "stopped": None})
    monkeypatch.setattr(runner, "run_notebook", lambda path, params: calls.append(("notebook", path.stem,
                                                                                    params["profile"])))
    return calls


def test_paper_profile_runs_the_protocol_first(monkeypatch, capsys):
    calls = _record(monkeypatch)
    assert runner.main(["run", "--profile", "paper", "--only", "paper_protocol", "--no-progress"]) == 0
    assert [c[0] for c in calls] == ["protocol", "notebook"]
    assert calls[0][1].endswith("results/paper") and calls[0][2] == "cpu"
    assert calls[1] == ("notebook", "paper_protocol", "paper")
    assert "0 unit(s) run, 0 left" in capsys.readouterr().err


def test_default_profile_and_no_protocol_run_notebooks_only(monkeypatch):
    calls = _record(monkeypatch)
    runner.main(["run", "--only", "paper_protocol", "--no-progress"])
    runner.main(["run", "--profile", "paper", "--no-protocol", "--only", "paper_protocol", "--no-progress"])
    assert [c[0] for c in calls] == ["notebook", "notebook"]
