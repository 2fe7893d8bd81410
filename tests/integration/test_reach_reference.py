"""The reaching results are unchanged by the refactor to the task interface: ``reach_reference.compute()``
against what the code before it computed (tests/data/reach_reference.npz)."""

from __future__ import annotations

import numpy as np

from tests.helpers import DATA


def test_reaching_outputs_equal_those_of_the_code_before_the_task_interface():
    from tests.integration import reach_reference

    old = dict(np.load(DATA / "reach_reference.npz"))
    new = reach_reference.compute()
    assert set(new) == set(old)
    for k in sorted(old):   # bit-identical on the machine that made the file; float rounding elsewhere
        np.testing.assert_allclose(new[k], old[k], rtol=1e-6, atol=1e-9, err_msg=k)
