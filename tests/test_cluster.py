"""A real two-node Ray cluster on this machine, joined through ``curate run --ray-address``.

Two ``ray start --block`` processes make the cluster: a head node with CPUs only and a second
node that declares one ``GPU`` (a resource count only: nothing uses a GPU here). The pipeline
runs as a separate driver process, then the GCS's actor table says where each stage's actor
pool ran, and every placement is checked against the resources the config declared.

Token authentication is on, with a token of this test's own in every process's environment
(``RAY_AUTH_MODE=token`` + ``RAY_AUTH_TOKEN``): ``ray start --head`` turns token auth on by
itself when ``~/.ray/auth_token`` exists, while ``ray start --address`` and
``ray.init(address=...)`` never do, so a mode left to each process's defaults differs between
them and the second node fails to register after ~20 s.

The cluster is stopped by signalling exactly the processes this test started (each node's
process group, then anything whose command line names this test's temporary folder), never
with ``ray stop``, which would kill every Ray instance of the user on this machine.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ROOT

from curate.cli import main
from curate.config.loading import load_config
from curate.run.registry import STAGES
from scripts.common.synth import pan_frames, textured_image, write_video

CLUSTER_YAML = ROOT / "deploy" / "ray-cluster.example.yaml"
CLUSTER_CONFIG = ROOT / "configs" / "cluster.yaml"
SUBMIT = ROOT / "scripts" / "submit_ray_job.sh"
PLACEMENT = ROOT / "scripts" / "ray_placement.py"

RAY_CLI = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")

needs_ray_cli = pytest.mark.skipif(RAY_CLI is None, reason="the `ray` command line is missing")

HEAD = {"CPU": 2.0}
GPU_NODE = {"CPU": 1.0, "GPU": 1.0}
OVERRIDES = [
    # Only the GPU node can host an embed actor.
    "ray.embed.num_gpus=1",
    # Only the head (2 CPUs) can host an analyze actor (the GPU node has 1 CPU).
    "ray.analyze.num_cpus=1.5",
    "ray.analyze.max_actors=1",
    # Fewer Ray Data jobs, so the test stays short: one clip has nothing to dedup or
    # re-balance, and captions add nothing about placement.
    "rebalance.enabled=false",
    "caption.enabled=false",
]
START_TIMEOUT_S = 90
RUN_TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class LocalCluster:
    """Ray nodes as ``ray start --block`` processes, each in its own process group, with their
    session files under one private folder."""

    def __init__(self) -> None:
        # Short: Ray's Unix sockets live below it, and socket paths are limited to ~107 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="curate-rc-", dir="/tmp"))
        self.procs: list[subprocess.Popen] = []
        env = {
            k: v
            for k, v in os.environ.items()
            # An in-process ray.init() (the ray_local fixture) sets RAY_AUTH_MODE=token in
            # this process's environment; every Ray process here gets the mode set explicitly.
            if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
        }
        env.update(
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN=secrets.token_hex(32),
            RAY_USAGE_STATS_ENABLED="0",
            # Ray Data reads Parquet footers with 32 actors per read by default: 32 worker
            # processes per read_parquet on a 2-core machine.
            RAY_DATA_PARQUET_FOOTER_NUM_ACTORS="1",
            # Workers import curate and stages from this checkout, whatever is installed.
            PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p),
        )
        self.env = env
        self.address: str | None = None
        self.start_s: dict[str, float] = {}

    def start_node(self, name: str, resources: dict[str, float], *args: str) -> None:
        started = time.monotonic()
        temp_dir = self.root / name
        temp_dir.mkdir()
        command = [
            RAY_CLI,
            "start",
            "--block",
            f"--temp-dir={temp_dir}",
            f"--num-cpus={int(resources.get('CPU', 0))}",
            f"--num-gpus={int(resources.get('GPU', 0))}",
            "--object-store-memory=100000000",
            "--disable-usage-stats",
            *args,
        ]
        with open(self.root / f"{name}.log", "wb") as log:  # the child keeps its own copy
            proc = subprocess.Popen(
                command,
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        # `ray start` writes the cluster's address into its temp dir once the node is up.
        address_file = temp_dir / "ray_current_cluster"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not address_file.is_file() or not address_file.read_text().strip():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray node {name} did not start:\n{self.log_tail(name)}")
            time.sleep(0.25)
        if self.address is None:
            self.address = address_file.read_text().strip()
        self.start_s[name] = round(time.monotonic() - started, 1)

    def start(self) -> None:
        self.start_node(
            "head",
            HEAD,
            "--head",
            f"--port={_free_port()}",
            # The (minimal) dashboard binds 8265 even when not "included": another port, so
            # that a Ray someone else runs on this machine cannot collide with this one.
            "--include-dashboard=false",
            f"--dashboard-port={_free_port()}",
        )
        self.start_node("gpu", GPU_NODE, f"--address={self.address}")

    def log_tail(self, name: str, chars: int = 4000) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.is_file() else ""

    def run(self, *args: str, timeout: float) -> subprocess.CompletedProcess:
        """A driver process on this cluster (``python ARGS``)."""
        return subprocess.run(
            [sys.executable, *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stop(self) -> None:
        """SIGTERM each node's process group (`ray start --block` then stops its own Ray
        processes), SIGKILL what is left after a few seconds, then any process naming this
        cluster's folder (workers run in process groups of their own)."""
        for proc in reversed(self.procs):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in reversed(self.procs):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
        for pid in _pids_naming(str(self.root)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)  # start_new_session: the group id is the leader's pid


def _pids_naming(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (a folder only this test uses)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if text.encode() in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.fixture
def cluster():
    if not Path("/proc").is_dir():
        pytest.skip("needs /proc to find the processes it started")
    c = LocalCluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()


def _stage_names(actor_class: str) -> set[str]:
    """Stage names in a Ray Data actor's class name, e.g. ``MapWorker(MapBatches(EmbedStage))``
    (fused operators name several)."""
    return {name for name, cls in STAGES.items() if f"MapBatches({cls.__name__})" in actor_class}


def _fits(resources: dict[str, float], need: dict[str, float]) -> bool:
    return all(resources.get(k, 0.0) >= v for k, v in need.items() if v)


@pytest.mark.ray
@needs_ray_cli
def test_pipeline_on_a_two_node_cluster_places_stages_by_their_resources(cluster, tmp_path):
    started = time.monotonic()
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_video(inputs / "pan.mp4", pan_frames(textured_image(11), 125, 2.0))  # 5 s, one clip
    out = tmp_path / "out"
    config = ROOT / "configs" / "demo.yaml"
    sets = [a for o in OVERRIDES for a in ("--set", o)]
    run = cluster.run(
        "-m",
        "curate.cli",
        "run",
        "-c",
        str(config),
        "-i",
        str(inputs),
        "-o",
        str(out),
        "--ray-address",
        cluster.address,
        "--no-progress",
        *sets,
        timeout=RUN_TIMEOUT_S,
    )
    assert run.returncode == 0, (
        f"curate run failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
    )
    assert main(["validate", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tiers"]["all_ok"]["clips"] == 1

    # Where the actors ran, from the GCS's actor table: a driver of its own, since this test
    # process may hold a local Ray of its own (the ray_local fixture).
    query = cluster.run(str(PLACEMENT), "--address", cluster.address, "--json", timeout=120)
    assert query.returncode == 0, query.stderr[-4000:]
    placement = json.loads(query.stdout.strip().splitlines()[-1])
    nodes = {n["id"]: n["resources"] for n in placement["nodes"] if n["alive"]}
    assert len(nodes) == 2, placement["nodes"]
    gpu_node = next(i for i, r in nodes.items() if r.get("GPU"))
    head = next(i for i in nodes if i != gpu_node)

    cfg = load_config(config, OVERRIDES)
    need = {
        name: {"CPU": getattr(cfg.ray, name).num_cpus, "GPU": getattr(cfg.ray, name).num_gpus}
        for name in STAGES
    }
    # The overrides leave one possible node for each of these two stages.
    assert [i for i, r in nodes.items() if _fits(r, need["embed"])] == [gpu_node]
    assert [i for i, r in nodes.items() if _fits(r, need["analyze"])] == [head]

    placed: dict[str, list[str]] = {}
    ran: set[str] = set()
    for actor in placement["actors"]:
        for stage in _stage_names(actor["class"]):
            if actor["node"] not in nodes:
                continue  # never placed (a pool's spare actor cancelled before scheduling)
            placed.setdefault(stage, []).append(actor["node"])
            if actor["pid"]:
                ran.add(stage)
            assert _fits(nodes[actor["node"]], need[stage]), (stage, actor, nodes)
    assert {"probe", "analyze", "embed", "export"} <= ran, placement["actors"]
    assert set(placed["embed"]) == {gpu_node}
    assert set(placed["analyze"]) == {head}
    spec = importlib.util.spec_from_file_location("ray_placement", PLACEMENT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    print(script.summary_text(placement))
    print(f"node start-up {cluster.start_s} s; run and checks {time.monotonic() - started:.1f} s")


def test_cluster_example_validates_and_has_a_node_type_for_every_stage():
    pytest.importorskip("jsonschema")
    import yaml
    from ray.autoscaler._private.util import prepare_config, validate_config

    launcher = prepare_config(yaml.safe_load(CLUSTER_YAML.read_text()))
    validate_config(launcher)  # what `ray up` checks first, without calling AWS
    types = launcher["available_node_types"]
    workers = {name: t["resources"] for name, t in types.items() if name != "head"}
    assert types["head"]["resources"] == {"CPU": 0}  # the head runs no stage work

    cfg = load_config(CLUSTER_CONFIG)
    hosts = {}
    for name in STAGES:
        res = getattr(cfg.ray, name)
        need = {"CPU": res.num_cpus, "GPU": res.num_gpus}
        hosts[name] = {t for t, r in workers.items() if _fits(r, need)}
        assert hosts[name], f"no node type can host ray.{name} ({need})"
    assert cfg.embed.backend == "open_clip"
    assert hosts["embed"] == {"gpu_worker"}
    assert "cpu_worker" in hosts["analyze"]
    gpus = types["gpu_worker"]["max_workers"] * types["gpu_worker"]["resources"]["GPU"]
    assert cfg.ray.embed.max_actors * cfg.ray.embed.num_gpus <= gpus


def test_submit_script_builds_a_ray_job_submit_command():
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("needs bash")
    assert subprocess.run([bash, "-n", str(SUBMIT)]).returncode == 0
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIA-not-a-secret", AWS_REGION="us-east-1")
    env.pop("AWS_SESSION_TOKEN", None)
    args = ["-a", "http://head:8265", "-c", str(CLUSTER_CONFIG), "-i", "s3://b/raw/"]
    args += ["-i", "s3://b/more/", "-o", "s3://b/out", "-s", "ray.analyze.max_actors=8"]
    args += ["--aws", "--submission-id", "job-1", "--dry-run"]
    run = subprocess.run(
        [bash, str(SUBMIT), *args], env=env, cwd="/", capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "AKIA-not-a-secret" not in run.stdout  # a dry run shows no credentials
    argv = shlex.split(run.stdout)
    split = argv.index("--")
    submit, entrypoint = argv[:split], argv[split + 1 :]
    assert submit[:3] == ["ray", "job", "submit"]
    opts = dict(zip(submit[3::2], submit[4::2]))
    assert opts["--address"] == "http://head:8265"
    assert opts["--submission-id"] == "job-1"
    assert Path(opts["--working-dir"]).resolve() == ROOT
    runtime_env = json.loads(opts["--runtime-env-json"])
    assert runtime_env["env_vars"] == {"AWS_ACCESS_KEY_ID": "***", "AWS_REGION": "***"}
    assert "/.git/" in runtime_env["excludes"]
    assert entrypoint == [
        "python", "-m", "curate.cli", "run", "--config", "configs/cluster.yaml",
        "--input", "s3://b/raw/", "--input", "s3://b/more/", "--output", "s3://b/out",
        "--ray-address", "auto", "--no-progress", "--set", "ray.analyze.max_actors=8",
    ]  # fmt: skip
    bad = subprocess.run(
        [bash, str(SUBMIT), "-a", "x", "-c", str(CLUSTER_CONFIG), "-i", "raw", "-o", "s3://b/o"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "s3://" in bad.stderr  # relative paths exist on no node
