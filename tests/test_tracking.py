"""wandb mode precedence and the offline fallback of an online run without a network."""

from __future__ import annotations

import logging
import sys
import types

import pytest

from repro.tracking import Tracker, resolve_mode


@pytest.mark.parametrize("configured, env, expected", [
    ("disabled", "online", "disabled"),   # an explicit logger.mode wins
    ("online", "offline", "online"),
    (None, "online", "online"),           # left open: the user's WANDB_MODE
    (None, "dryrun", "offline"),
    (None, None, "offline"),              # neither: offline, never a network by surprise
])
def test_logger_mode_wins_then_wandb_mode_then_offline(monkeypatch, configured, env, expected):
    if env is None:
        monkeypatch.delenv("WANDB_MODE", raising=False)
    else:
        monkeypatch.setenv("WANDB_MODE", env)
    assert resolve_mode(configured) == expected


def test_a_bad_wandb_mode_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "loud")
    with pytest.raises(ValueError, match="WANDB_MODE='loud' is not a wandb mode"):
        resolve_mode(None)


class NoNetworkWandb(types.ModuleType):
    """wandb whose online init fails as it does without a network (after its timeout)."""

    def __init__(self):
        super().__init__("wandb")
        self.inits = []
        self.Settings = lambda **kw: kw

    def init(self, mode, settings=None, **kwargs):
        self.inits.append((mode, settings))
        if mode == "online":
            raise TimeoutError("Run initialization has timed out after 30.0 sec.")
        return types.SimpleNamespace(log=lambda *a, **k: None, finish=lambda exit_code=0: None)


def test_online_without_a_network_goes_on_offline_before_training(monkeypatch, caplog, tmp_path):
    fake = NoNetworkWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    cfg = {"mode": "online", "project": "p", "init_timeout": 5}
    with caplog.at_level(logging.WARNING, logger="repro.tracking"):
        tracker = Tracker(cfg, [{}], ["run-a"], 10, 0, str(tmp_path), show_progress=False)
    assert fake.inits == [("online", {"init_timeout": 5}), ("offline", None)]
    assert len(tracker.runs) == 1 and "logging offline instead" in caplog.text
    tracker.finish()
