"""`make mutation`'s driver (tests/mutation.py): what keeps its verdicts sound."""

import subprocess
import sys

import pytest

from tests import mutation


def test_a_module_runs_once_at_a_time_and_its_lock_outlives_the_driver_in_its_children(tmp_path, monkeypatch):
    monkeypatch.setattr(mutation, "WORK", tmp_path)
    with mutation._module_lock("repro_loop") as fd:
        with pytest.raises(SystemExit, match="another `make mutation` is running repro_loop"):
            with mutation._module_lock("repro_loop"):
                pass
        with mutation._module_lock("repro_data_scenes"):  # other modules are free
            pass
        # a child given the descriptor (cosmic-ray exec) keeps the lock after this process lets go
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], pass_fds=(fd,))
    try:
        with pytest.raises(SystemExit, match="another"):
            with mutation._module_lock("repro_loop"):
                pass
    finally:
        child.kill()
        child.wait()
    with mutation._module_lock("repro_loop"):
        pass
