"""The paper's protocol as resumable units of work: ``python -m fbctrl paper``.

Units (each writes its own file atomically, with its provenance, and is skipped when that file
exists, reads whole and is current: :func:`unit_status`; files are read, written, hashed and
claimed through :mod:`fbctrl.experiments.store`). Each kind runs a batch of its units itself
(its class's ``run_batch``):

* :class:`PretrainUnit` -- one network, pre-trained as the published code does (the book's
  Methods page, "Pre-training": random reaches *without* pushes, 5000 batches of 256):
  ``{checkpoints}/{fb|nofb}_seed{s}.pt``. Seeds of one kind train in lockstep on a GPU, one at a
  time on a CPU; an interrupted one resumes from its resume file.
* :class:`AdaptUnit` -- one adaptation run (network kind x seed x rotation x condition x
  protocol), 1000 trials, exact ("history") online BPTT, integrated error from zero:
  ``{results}/adapt/{protocol}/rot{deg}/{kind}_{condition}_seed{s}.npz``.
* :class:`SweepUnit` -- one run of the learning-rate sweep at 30 degrees (seed x condition x rate):
  ``{results}/sweep/rot{deg}/{condition}_lr{rate}_seed{s}.npz``.
* :class:`fbctrl.experiments.network_units.NetworkUnit` -- one network-level measure (Figures 2c,
  4a, 5b, the W_rec Newton comparison) of one network with feedback, published or shipped
  (pre-trained with pushes, a robustness column): ``{results}/network/{source}/{measure}/fb_seed{s}.npz``.
  A unit of a published network that is not pre-trained yet waits for it.

Runs of one rule are advanced in lockstep in groups (``adapt.adapt`` with many runs); each run's
file is written when its group finishes, so an interruption loses at most the group in flight.

Modules, one job each (each imports only those above it):

* :mod:`~fbctrl.experiments.paper.config` -- the sizes (:class:`PaperConfig`), kinds, stages, variants;
* :mod:`~fbctrl.experiments.paper.pretrain` -- pre-training units and the checked loading of their networks;
* :mod:`~fbctrl.experiments.paper.files` -- unit files: reading, writing, whether a unit is done, loading;
* :mod:`~fbctrl.experiments.paper.lockstep` -- one lockstep group of adaptation or sweep runs;
* :mod:`~fbctrl.experiments.paper.sweep` -- sweep units, the sweep's tables, extensions and best rates;
* :mod:`~fbctrl.experiments.paper.adaptation` -- adaptation units and their learning rates;
* :mod:`~fbctrl.experiments.paper.planning` -- the plan: every group of units in its order;
* :mod:`~fbctrl.experiments.paper.costs` -- the cost model (calibration, estimates, the printed plan);
* :mod:`~fbctrl.experiments.paper.shard` -- sharding the plan among processes;
* :mod:`~fbctrl.experiments.paper.run` -- running batches and the whole plan within a budget, with claims.
"""

from ..network_units import NetworkUnit
from ..store import UNIT_KIND, DamagedFileError
from .adaptation import AdaptUnit, adapt_units
from .config import KINDS, STAGES, PaperConfig, Variant, rotation_folder
from .costs import (GPU_FP32_FLOPS, GPU_LAUNCH_S, Costs, calibrate, default_max_runs, format_plan, hms, plan_costs,
                    published_costs, unit_seconds)
from .files import (is_done, load_network_units, load_runs, network_settings, read_meta, read_unit, sweep_digest,
                    unit_dict, unit_status, write_unit)
from .lockstep import run_lockstep
from .planning import Group, network_ready, plan
from .pretrain import PretrainUnit, load_networks
from .run import batches, run_batch, run_plan
from .shard import check_shard, shard_threads, shard_units
from .sweep import (SweepUnit, best_index, best_swept_rates, sweep_extension, sweep_grid, sweep_rotation, sweep_table,
                    sweep_units)

__all__ = ["PaperConfig", "KINDS", "STAGES", "Variant", "rotation_folder",
           "PretrainUnit", "AdaptUnit", "SweepUnit", "NetworkUnit", "Group", "load_networks", "adapt_units",
           "unit_dict", "read_meta", "read_unit", "write_unit", "sweep_digest", "unit_status", "is_done",
           "network_settings", "load_runs", "load_network_units", "UNIT_KIND", "DamagedFileError",
           "run_lockstep", "sweep_rotation", "sweep_grid", "sweep_units", "sweep_table", "sweep_extension",
           "best_index", "best_swept_rates", "network_ready", "plan", "GPU_LAUNCH_S", "GPU_FP32_FLOPS", "Costs", "calibrate", "unit_seconds",
           "default_max_runs", "published_costs", "plan_costs", "format_plan", "hms", "run_batch", "batches",
           "run_plan", "shard_threads", "shard_units", "check_shard"]
