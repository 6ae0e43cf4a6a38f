"""Poison inputs: decoders that hang, crash or balloon cost one rejects row, never the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import ROOT
from conftest import run_pipeline as run
from sandboxed import crash_unless, raise_bug, raise_media_error

from curate.cli import main
from curate.config import ConfigError
from curate.config.loading import load_config
from curate.config.sections import CurateConfig, IsolationConfig
from curate.media.sandbox import Sandbox, SandboxError
from curate.media.video import MediaError, probe
from curate.output.validate import accounting_problems
from scripts.common.synth import (
    bad_inputs,
    pan_frames,
    png_image,
    poison_overrides,
    shots_video,
    still_frames,
    textured_image,
    write_video,
)
from stages.probe import ProbeStage


def isolation(**overrides) -> IsolationConfig:
    return IsolationConfig(**{"probe_timeout_s": 30.0, **overrides})


def sandbox(preload=("curate.media.video",), **overrides) -> Sandbox:
    return Sandbox(isolation(**overrides), "probe", preload)


def run_in(box: Sandbox, fn, *args, source="/videos/a.mp4", timeout_s=30.0, **kwargs):
    return box.run(fn, *args, source=source, timeout_s=timeout_s, timeout_key="t", **kwargs)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("isolation") / "still.mp4"
    return write_video(path, still_frames(textured_image(3), 125, (144, 256)))


# The sandbox ----------------------------------------------------------------------------


def test_result_comes_from_one_long_lived_child(video):
    box = sandbox()
    info = run_in(box, probe, str(video), max_pixels=10**8)
    assert (info.width, info.height) == (256, 144)
    child = run_in(box, os.getpid)
    assert child != os.getpid() and child == box.pid
    assert run_in(box, os.getpid) == child  # not a process per source


def test_child_outlives_the_thread_that_started_it():
    """Linux's parent-death signal follows the starting *thread*; a Ray task thread may end."""
    box = sandbox()
    box.close()
    started: list[int] = []
    thread = threading.Thread(target=lambda: started.append(run_in(box, os.getpid)))
    thread.start()
    thread.join()
    time.sleep(0.5)
    assert run_in(box, os.getpid) == started[0]


def test_hang_is_a_timeout_and_the_next_source_gets_a_fresh_child(video):
    box = sandbox(faults={"*/hang.mp4": "hang"})
    first = run_in(box, os.getpid, source="/videos/ok.mp4")
    started = time.monotonic()
    with pytest.raises(MediaError) as e:
        run_in(box, probe, str(video), max_pixels=10**8, source="/x/hang.mp4", timeout_s=1.0)
    assert e.value.reason == "timeout" and "1 s (t)" in e.value.detail
    assert time.monotonic() - started < 10
    assert not _alive(first)
    assert run_in(box, os.getpid, source="/videos/ok.mp4") not in (None, first)


def test_crash_is_retried_in_fresh_children_then_a_decode_error():
    box = sandbox(faults={"*": "crash"}, retries=2)
    with pytest.raises(MediaError) as e:
        run_in(box, os.getpid)
    assert e.value.reason == "decode_error"
    assert "SIGSEGV" in e.value.detail and "3 attempts" in e.value.detail, e.value.detail


def test_a_transient_crash_is_survived_by_a_retry(tmp_path):
    box = sandbox(retries=1)
    child = run_in(box, crash_unless, str(tmp_path / "crashed-once"))
    assert child == box.pid and (tmp_path / "crashed-once").exists()
    with pytest.raises(MediaError, match=r"died of SIGSEGV \(isolation.retries=0\)"):
        run_in(sandbox(retries=0), crash_unless, str(tmp_path / "again"))


def test_memory_limit_kills_the_child():
    box = sandbox(faults={"*": "memory"}, memory_mb=256)
    with pytest.raises(MediaError) as e:
        run_in(box, os.getpid)
    assert e.value.reason == "decode_error"
    assert "memory limit exceeded" in e.value.detail and "isolation.memory_mb 256" in e.value.detail


def test_decompression_bomb_is_stopped_by_the_memory_limit(tmp_path):
    """A 200 KB PNG of 8000 x 8000 px: FFmpeg decodes it (~190 MB) while opening it, before
    any size check of ours can refuse it. The peak is checked after the answer too, so the
    outcome does not depend on when the watchdog looked."""
    bomb = tmp_path / "bomb.mp4"
    bomb.write_bytes(png_image(8000, 8000))
    config = CurateConfig(isolation={"memory_mb": 160})
    row = ProbeStage.from_config(config).probe_one(str(bomb), 0)
    assert row["reason"] == "decode_error" and "memory limit exceeded" in row["detail"], row


def test_errors_of_the_work_pass_through():
    box = sandbox()
    with pytest.raises(MediaError) as e:
        run_in(box, raise_media_error)
    assert (e.value.reason, e.value.detail) == ("unreadable", "cannot open: nope")
    with pytest.raises(SandboxError, match=r"KeyError.*a bug(.|\n)*raise_bug"):
        run_in(box, raise_bug)
    assert run_in(box, os.getpid) == box.pid  # the child survives a Python error


def test_disabled_runs_in_process():
    assert run_in(sandbox(enabled=False), os.getpid) == os.getpid()


def test_faults_follow_the_glob_and_stage():
    faults = {"*/hang*.mp4": "hang", "*crash*": "analyze:crash"}
    probe_box = Sandbox(isolation(faults=faults), "probe")
    analyze_box = Sandbox(isolation(faults=faults), "analyze")
    assert probe_box.fault_for("/v/hang-1.mp4") == analyze_box.fault_for("/v/hang-1.mp4") == "hang"
    assert probe_box.fault_for("/v/crash.mp4") is None
    assert analyze_box.fault_for("/v/crash.mp4") == "crash"
    assert probe_box.fault_for("/v/fine.mp4") is None


def test_child_dies_with_its_parent(tmp_path):
    """SIGKILL the process that owns a child stuck in a hang: the child goes too."""
    script = (
        "import os, threading, time\n"
        "from curate.config.sections import IsolationConfig\n"
        "from curate.media.sandbox import Sandbox\n"
        "box = Sandbox(IsolationConfig(faults={'*': 'hang'}), 'probe')\n"
        "threading.Thread(target=box.run, args=(os.getpid,), daemon=True,\n"
        "    kwargs=dict(source='/x.mp4', timeout_s=600, timeout_key='t')).start()\n"
        "while box.pid is None: time.sleep(0.05)\n"
        "print(box.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.kill()
        parent.wait()
        assert _gone_within(child, 10)
    finally:
        parent.kill()


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"isolation\.faults\.\*\.mp4"):
        load_config(None, ['isolation.faults={"*.mp4": explode}'])
    with pytest.raises(ConfigError, match=r"isolation: .*enabled"):
        load_config(None, ["isolation.enabled=false", 'isolation.faults={"*": hang}'])
    with pytest.raises(ConfigError, match=r"isolation\.memory_mb"):
        load_config(None, ["isolation.memory_mb=0"])
    with pytest.raises(ConfigError, match=r"ray\.analyze\.max_task_retries"):
        load_config(None, ["ray.analyze.max_task_retries=-2"])


# End to end on a local 2-CPU Ray ---------------------------------------------------------


PHASE1_ONLY = [
    "--set",
    "dedup.enabled=false",
    "--set",
    "rebalance.enabled=false",
    "--set",
    "caption.enabled=false",
    "--set",
    "export.mode=reference",
]
"""What these tests are about happens in phase 1: skip the slow parts of phase 2 and 3."""


def rows(folder, columns=None):
    return pq.read_table(folder, columns=columns).to_pylist()


def test_bad_and_poison_inputs_each_get_one_reject(ray_local, tmp_path):
    folder = tmp_path / "in"
    expected = bad_inputs(folder / "bad", poison=True)
    write_video(folder / "pan.mp4", pan_frames(textured_image(11), 125, 2.0))
    shots_video(folder / "shots.mp4", [110, 110])
    out = tmp_path / "out"
    poison = [a for o in poison_overrides() for a in ("--set", o)]
    assert run([folder], out, *poison, *PHASE1_ONLY) == 0
    assert main(["validate", str(out)]) == 0
    assert accounting_problems(out) == []
    rejects = rows(out / "rejects")
    for name, reason in expected.items():
        mine = [r for r in rejects if r["source"].endswith(f"/{name}")]
        assert len(mine) == 1 and mine[0]["reason"] == reason and mine[0]["clip_id"] is None, mine
    hang = next(r for r in rejects if r["source"].endswith("/hang.mp4"))
    assert hang["stage"] == "probe" and "isolation.probe_timeout_s" in hang["detail"]
    crash = next(r for r in rejects if r["source"].endswith("/crash.mp4"))
    assert crash["stage"] == "analyze" and "SIGSEGV on each of 2 attempts" in crash["detail"]
    analysed = {r["source"].rsplit("/", 1)[1] for r in rows(out / "analysis", ["source"])}
    assert analysed == {"pan.mp4", "shots.mp4"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["funnel"]["probe"]["rejected"] == {
        "low_resolution": 1,
        "no_video_stream": 1,
        "timeout": 1,
        "unreadable": 4,
    }
    assert manifest["funnel"]["analyze"]["rejected"] == {"decode_error": 1}
    assert manifest["config"]["ray"]["analyze"]["max_task_retries"] == 3


@pytest.mark.parametrize(
    ("pools", "actor_class"), [("fused", "StageChain"), ("per_stage", "AnalyzeStage")]
)
def test_killed_analyze_worker_is_replaced_and_its_source_rerun(
    ray_local, tmp_path, pools, actor_class
):
    """SIGKILL the analyzing actor's process while it decodes (the phase-1 actor when the
    stages share a pool, the analyze actor otherwise): Ray restarts the actor, the batch in
    flight runs again (``ray.analyze.max_task_retries``), the actor's sandbox child dies with
    it, and every input is accounted for."""
    folder = tmp_path / "in"
    folder.mkdir()
    image = textured_image(21)
    for i in range(4):
        write_video(folder / f"pan{i}.mp4", pan_frames(image, 150 + 10 * i, 1.0 + i))
    killed: dict = {}
    stop = threading.Event()
    since_ms = time.time() * 1000

    def kill_analyze_worker() -> None:
        from ray._private import state

        while not stop.is_set():
            for actor in state.actors().values():
                if (
                    actor_class in actor["ActorClassName"]
                    and actor["State"] == "ALIVE"
                    and actor["StartTime"] >= since_ms
                    and actor["Pid"]
                ):
                    # The sandbox child starts with the actor's first source: it is decoding.
                    children = _sandbox_children(actor["Pid"])
                    if children:
                        os.kill(actor["Pid"], signal.SIGKILL)
                        killed.update(actor=actor["ActorID"], pid=actor["Pid"], child=children[0])
                        return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_analyze_worker, daemon=True)
    killer.start()
    out = tmp_path / "out"
    try:
        assert run([folder], out, *PHASE1_ONLY, "--set", f"ray.phase1_pools={pools}") == 0
    finally:
        stop.set()
        killer.join()
    assert killed, "the analyze worker was never seen working"
    assert main(["validate", str(out)]) == 0
    assert accounting_problems(out) == []
    analysed = {r["source"].rsplit("/", 1)[1] for r in rows(out / "analysis", ["source"])}
    assert analysed == {f"pan{i}.mp4" for i in range(4)}
    assert rows(out / "rejects") == [] or all(r["clip_id"] for r in rows(out / "rejects"))
    assert _gone_within(killed["child"], 10)
    from ray._private import state

    assert state.actors()[killed["actor"]]["NumRestarts"] >= 1


# Helpers --------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie nobody reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _sandbox_children(pid: int) -> list[int]:
    """Sandbox processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != pid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if b"curate.media.sandbox" in f.read():
                    found.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return found


def test_worker_that_dies_on_every_try_costs_its_source_only(ray_local, tmp_path):
    """A source whose Ray worker dies each time (outside the sandbox's reach) exhausts
    ``ray.analyze.max_task_retries``; its batch is skipped, the source becomes a
    ``decode_error`` reject, and the other sources are curated as usual."""
    folder = tmp_path / "in"
    folder.mkdir()
    image = textured_image(22)
    for i in range(3):
        write_video(folder / f"pan{i}.mp4", pan_frames(image, 130, 1.0 + i))
    out = tmp_path / "out"
    faults = ["--set", "isolation.faults={'*pan1.mp4': 'analyze:worker'}"]
    retries = ["--set", "ray.analyze.max_task_retries=1"]
    # One source at a time per actor: Ray fails every task in flight on an actor that dies,
    # so a source queued behind the poisoned one on the same actor would die with it.
    actors = [
        *("--set", "ray.analyze.min_actors=2", "--set", "ray.analyze.max_actors=2"),
        *("--set", "ray.analyze.max_tasks_in_flight=1"),
    ]
    assert run([folder], out, *PHASE1_ONLY, *faults, *retries, *actors) == 0
    assert main(["validate", str(out)]) == 0
    assert accounting_problems(out) == []
    analysed = {r["source"].rsplit("/", 1)[1] for r in rows(out / "analysis", ["source"])}
    assert analysed == {"pan0.mp4", "pan2.mp4"}
    lost = [r for r in rows(out / "rejects") if r["clip_id"] is None]
    assert [(r["source"].rsplit("/", 1)[1], r["reason"]) for r in lost] == [
        ("pan1.mp4", "decode_error")
    ]
    assert "max_task_retries" in lost[0]["detail"]
