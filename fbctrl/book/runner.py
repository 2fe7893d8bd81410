"""The runner that executes the book's notebooks in place.

Command line::

    python -m fbctrl.book run [--profile default|paper] [--device cpu|cuda] [--only NAME ...]
                              [--checkpoint-dir DIR] [--no-protocol]
    python -m fbctrl.book list
    python -m fbctrl.book repository [OWNER/NAME] [--check]   # the repository URL (fbctrl.book.repository)

``run`` executes the book's notebooks (those listed in ``_toc.yml``, in that order) in place with
papermill (kernel ``python3``, working directory ``book/``), injecting the parameters ``profile``
and ``device`` (and ``checkpoint_dir`` if given). A notebook that fails leaves the committed
notebook untouched; the failed copy goes to ``_build/failed/``. Bad arguments end with one line
``fbctrl.book: error: ...`` and exit code 2.

With ``--profile paper`` it first runs (or resumes) the paper's protocol, what ``python -m fbctrl
paper`` runs (:func:`fbctrl.experiments.paper.run_plan` on the repository's store), so that the
verdict table and every paper-scale figure rest on finished units; units already in the store are
skipped (``--no-protocol`` skips the step).

Conventions for a notebook (see the Introduction of the book):

1. the first markdown cell lists the parameters;
2. the first code cell is the Colab cell (:mod:`fbctrl.book.colab`: it does nothing outside Colab);
3. the next code cell is tagged ``parameters`` and only assigns them (``profile``, ``device``,
   ``checkpoint_dir=None``, ``seeds``, ...; folders left None are the repository's, see
   :mod:`fbctrl.paths`, so a notebook runs from any working folder);
4. the next cell calls ``P = book.validate_params(...)`` and ``book.setup_notebook()``
   (:mod:`fbctrl.book.params`);
5. numbers that appear in the prose are glued with :mod:`fbctrl.book.glue` and written as
   ``{glue:text}`key``` in the markdown.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import nbformat
import papermill as pm
import yaml
from tqdm.auto import tqdm

from ..cli import OneLineParser, device, existing_dir
from ..experiments.paper import run_plan
from ..paths import SOURCE_ROOT
from . import repository
from .glue import caption_key
from .params import PROFILES, get_profile
from .scale import store_config

__all__ = ["ROOT", "BOOK_DIR", "TOC", "BookError", "toc_files", "book_notebooks", "run_notebook", "run_notebooks",
           "build_parser", "main"]

ROOT = SOURCE_ROOT
BOOK_DIR = ROOT / "book"
TOC = ROOT / "_toc.yml"


class BookError(Exception):
    """A bad argument or set-up problem: one line, exit code 2."""


def toc_files(toc: Path = TOC) -> list[str]:
    """Every ``file`` entry of ``_toc.yml`` (the root first), in order, without suffix."""
    data = yaml.safe_load(Path(toc).read_text())
    out = [data["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                out.append(node["file"])
            for k in ("parts", "chapters", "sections"):
                for child in node.get(k, []) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(data)
    return out


def book_notebooks(toc: Path = TOC) -> list[Path]:
    """The notebooks of the book, in TOC order."""
    root = Path(toc).resolve().parent
    return [root / f"{f}.ipynb" for f in toc_files(toc) if (root / f"{f}.ipynb").is_file()]


_WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _renumber_widgets(nb) -> None:
    """Give widget models deterministic ids (in order of first reference from the outputs) and
    drop models no output refers to: widget ids are random per run."""
    state = nb.metadata.get("widgets", {}).get(_WIDGET_STATE, {}).get("state")
    if not state:
        return
    order: list[str] = []
    views = [o["data"][_WIDGET_VIEW] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if _WIDGET_VIEW in o.get("data", {})]
    queue = [v["model_id"] for v in views]
    while queue:
        mid = queue.pop(0)
        if mid in order or mid not in state:
            continue
        order.append(mid)
        queue += re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(state[mid], sort_keys=True))
    new = {old: f"{i:032x}" for i, old in enumerate(order)}

    def sub(s: str) -> str:
        return re.sub(r"[0-9a-f]{32}", lambda m: new.get(m.group(0), m.group(0)), s)

    nb.metadata["widgets"][_WIDGET_STATE]["state"] = {
        new[k]: json.loads(sub(json.dumps(state[k]))) for k in order}
    for v in views:
        v["model_id"] = new.get(v["model_id"], v["model_id"])


_RECORD = "application/papermill.record/text/plain"


def sync_figure_captions(nb) -> list[str]:
    """A figure's caption lives in its cell's metadata (``mystnb.figure.caption``), which the
    run does not touch; a cell that glues its caption (:func:`caption_key`, e.g.
    ``fbctrl.book.scale.chapter_figure``) gets it copied there, so no caption outlives the data
    it describes. Returns the names of the figures whose caption changed."""
    changed = []
    for cell in nb.cells:
        fig = cell.get("metadata", {}).get("mystnb", {}).get("figure")
        if cell.cell_type != "code" or not fig or "name" not in fig:
            continue
        key = caption_key(fig["name"])
        for out in cell.get("outputs", []):
            if out.get("metadata", {}).get("scrapbook", {}).get("name") == key and _RECORD in out.get("data", {}):
                text = ast.literal_eval(out["data"][_RECORD])
                if fig.get("caption") != text:
                    fig["caption"] = text
                    changed.append(fig["name"])
    return changed


def _clean_metadata(nb) -> None:
    """Drop per-run metadata (timings, random cell and widget ids) so that a re-run on the same
    machine changes no bytes."""
    pm = nb.metadata.get("papermill", {})
    nb.metadata["papermill"] = {"parameters": pm.get("parameters", {})}
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags:
            cell["id"] = "injected-parameters"
            if "hide-cell" not in tags:
                cell.metadata["tags"] = tags + ["hide-cell"]
    _renumber_widgets(nb)


# the kernel's own start-up warnings (its transport on this machine) are not the reader's concern:
# a failing run then prints its one error line, nothing before it
KERNEL_QUIET = ["--IPKernelApp.log_level=ERROR"]


def run_notebook(path: Path, parameters: dict) -> None:
    """Execute one notebook in place (cwd = its folder). On failure the notebook is left as it
    was and the failed copy is written to ``_build/failed/``."""

    path = Path(path).resolve()
    tmp = path.with_name(f".{path.stem}.run-tmp.ipynb")
    try:
        pm.execute_notebook(str(path), str(tmp), parameters=parameters, kernel_name="python3",
                            cwd=str(path.parent), progress_bar=False, log_output=False,
                            request_save_on_cell_execute=False, extra_arguments=KERNEL_QUIET)
    except Exception as exc:  # noqa: BLE001
        failed = ROOT / "_build" / "failed" / path.name
        failed.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            os.replace(tmp, failed)
        msg = str(exc).strip().splitlines()
        raise RuntimeError(f"{path.name} failed ({type(exc).__name__}: "
                           f"{msg[-1] if msg else ''}); executed copy in {failed}") from None
    nb = nbformat.read(tmp, as_version=4)
    sync_figure_captions(nb)
    _clean_metadata(nb)
    nbformat.write(nb, tmp)
    os.replace(tmp, path)


def run_protocol(device: str = "cpu", progress: bool = True) -> dict:
    """Run or resume the paper's protocol on the repository's store (``python -m fbctrl paper``)."""
    print("the paper's protocol: running what the store lacks (python -m fbctrl paper)", file=sys.stderr, flush=True)
    res = run_plan(store_config(), device=device, progress=progress,
                   command="python -m fbctrl.book run --profile paper", log=lambda m: print(m, file=sys.stderr))
    print(f"the paper's protocol: {res['units_done']} unit(s) run, {res['units_left']} left"
          + (f" ({res['stopped']})" if res["stopped"] else ""), file=sys.stderr, flush=True)
    return res


def run_notebooks(profile: str = "default", device: str = "cpu", only: list[str] | None = None,
                  checkpoint_dir: str | None = None, progress: bool = True, protocol: bool = True) -> list[Path]:
    """Execute the book's notebooks in place (see module docstring); with the ``paper`` profile
    (and ``protocol``), first run or resume the paper's protocol."""
    get_profile(profile)
    if profile == "paper" and protocol:
        run_protocol(device, progress)
    nbs = book_notebooks()
    if only:
        by_name = {p.stem: p for p in nbs}
        chosen = []
        for name in only:
            stem = Path(name).name.removesuffix(".ipynb")
            if stem not in by_name:
                raise BookError(f"--only: unknown notebook {name!r} (allowed: {', '.join(by_name)})")
            chosen.append(by_name[stem])
        nbs = [p for p in nbs if p in chosen]
    params: dict[str, Any] = {"profile": profile, "device": device}
    if checkpoint_dir is not None:
        params["checkpoint_dir"] = str(Path(checkpoint_dir).resolve())
    # the kernels inherit this: fbctrl's progress bars stay out of the notebooks' outputs
    os.environ["TQDM_DISABLE"] = "1"
    bar = tqdm(nbs, desc=f"notebooks ({profile}, {device})", unit="notebook", disable=not progress,
               dynamic_ncols=True)
    for p in bar:
        bar.set_postfix_str(p.name)
        run_notebook(p, params)
    return nbs


class _Parser(OneLineParser):
    error_class = BookError


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m fbctrl.book", description="Execute the book's notebooks in place.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    r = sub.add_parser("run", help="execute notebooks in place with papermill")
    r.add_argument("--profile", choices=list(PROFILES), default="default",
                   help="; ".join(f"{k}: {v.description}" for k, v in PROFILES.items()))
    r.add_argument("--device", type=device, default="cpu", help="cpu or cuda[:N]")
    r.add_argument("--only", nargs="+", metavar="NAME", help="notebook names (e.g. model_and_task)")
    r.add_argument("--checkpoint-dir", type=existing_dir, default=None,
                   help="folder of pre-trained networks (default: the repository's checkpoints/)")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--no-protocol", action="store_true",
                   help="with --profile paper: do not run or resume python -m fbctrl paper first")
    sub.add_parser("list", help="list the notebooks in book order")
    g = sub.add_parser("repository", help="set the book's repository URL everywhere (_config.yml and its copies)")
    g.add_argument("name", nargs="?", type=_repository_name, metavar="OWNER/NAME",
                   help="owner/name or https://github.com/owner/name (e.g. $GITHUB_REPOSITORY)")
    g.add_argument("--check", action="store_true", help="only check that every copy names _config.yml's URL")
    return p


def _repository_name(text: str) -> str:
    try:
        return repository.github_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("repository must be ")) from None


def _repository(a) -> int:
    """``repository [OWNER/NAME] [--check]``: set the URL, then check every copy of it."""
    if a.name is None and not a.check:
        raise BookError("repository: give OWNER/NAME, or --check")
    if a.name is not None:
        for path in repository.set_repository(a.name):
            print(f"{path.relative_to(ROOT)}: now names {a.name}")
    problems = repository.check()
    if problems:
        raise BookError("repository: " + "; ".join(problems) + " (python -m fbctrl.book repository OWNER/NAME)")
    print(f"repository: {repository.repository_url()} everywhere")
    return 0


def main(argv=None) -> int:
    try:
        a = build_parser().parse_args(argv)
        if a.cmd == "list":
            for p in book_notebooks():
                print(p.relative_to(ROOT))
            return 0
        if a.cmd == "repository":
            return _repository(a)
        run_notebooks(a.profile, a.device, a.only, a.checkpoint_dir, progress=not a.no_progress,
                      protocol=not a.no_protocol)
        return 0
    except BookError as exc:
        print(f"fbctrl.book: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"fbctrl.book: error: {exc}", file=sys.stderr)
        return 1
