"""Ray session handling and stage placement."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
import ray
import ray.data

from curate.config.sections import CurateConfig, StageResources
from curate.run.progress import Progress
from curate.run.stage import Stage
from curate.storage import Store

log = logging.getLogger(__name__)

# Ray 2.60 has no named map_batches parameter for an actor pool's max_restarts and
# max_task_retries yet: they travel as ray_remote_args, which Ray deprecates (for 2.64) with a
# warning per pool. Silence only that message; revisit when its replacement lands.
warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")


@contextmanager
def ray_session(
    config: CurateConfig,
    address: str | None = None,
    *,
    verbose: bool = False,
    progress: Progress | None = None,
) -> Iterator[None]:
    """Join ``address`` (``auto``, ``ray://…``), or start a local Ray instance and stop it
    afterwards. An already initialised Ray (a notebook, a test session) is reused as is.

    Unless ``verbose``, Ray's own start-up chatter (token authentication, core-worker notices,
    progress-UI tips) stays in its log files (``/tmp/ray/session_latest/logs``); workers'
    output is written through ``progress`` so it never tears the live line. The notices
    Ray's C++ core writes straight to this process's stderr are dropped by
    :func:`native_notices_dropped`, which the command line wraps around a run."""
    if ray.is_initialized():
        yield
        return
    address = address or config.ray.address
    level = logging.INFO if verbose else logging.ERROR
    if address:
        ray.init(address=address, logging_level=level)
    else:
        ray.init(num_cpus=config.ray.num_cpus, include_dashboard=False, logging_level=level)
    if progress is not None:
        _route_worker_output(progress)
    try:
        yield
    finally:
        ray.shutdown()


def _route_worker_output(progress: Progress) -> None:
    """Print what Ray workers write (a stage's warnings) through ``progress``."""
    try:
        from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher
    except ImportError:  # a Ray without this hook prints as it always does
        return

    def show(data: dict) -> None:
        if not isinstance(data.get("pid"), int):
            return  # the raylet's and autoscaler's own notices: in their log files
        name = data.get("actor_name") or data.get("task_name") or "worker"
        for line in data.get("lines", []):
            progress.message(f"({name} pid={data['pid']}) {line}")

    dispatcher.remove_handler("ray_print_logs")
    dispatcher.add_handler("curate_worker_output", show)


NATIVE_NOTICE = re.compile(rb"^\[\d{4}-\d\d-\d\d [\d:,.]+ [DIWE] \d+ \d+\] \w+\.cc:\d+:")
"""A line of Ray's C++ logging (``[2026-12-01 13:49:16,975 E 356 356] core_worker.cc:…``)."""


@contextmanager
def native_notices_dropped() -> Iterator[None]:
    """Drop the lines Ray's C++ core writes to this process's stderr (file descriptor 2; a
    notice per actor pool about restartable actors, for one) and pass everything else on.

    Text is passed on as it arrives, so a status line redrawn without a newline still shows;
    only text that may begin such a line waits for its end."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr
        yield
        return
    read_end, write_end = os.pipe()
    sys.stderr.flush()
    os.dup2(write_end, 2)
    os.close(write_end)

    thread = threading.Thread(
        target=_forward_text, args=(read_end, saved), name="curate-stderr", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the thread sees its end
        thread.join(timeout=5)
        os.close(read_end)
        os.close(saved)


def _forward_text(read_end: int, target: int) -> None:
    """Copy ``read_end`` to ``target`` without Ray's native log lines, until the pipe ends."""
    pending = b""
    with contextlib.suppress(OSError):  # the pipe closed under a reader that was too slow
        while chunk := os.read(read_end, 65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            out = b"".join(line + b"\n" for line in lines if not NATIVE_NOTICE.match(line))
            if pending and not pending.startswith(b"["):
                out, pending = out + pending, b""
            if out:
                os.write(target, out)
        if pending:
            os.write(target, pending)


PARQUET_FOOTER_ACTORS = "2"
"""Ray Data 2.60 reads Parquet footers with a fleet of 32 actors per read by default: on a
small machine that costs more than the reads. Our tables are a few large shards.
``RAY_DATA_PARQUET_FOOTER_NUM_ACTORS`` in the environment overrides this."""


def configure_data_context(verbose: bool = False) -> None:
    """Ray Data settings for curate's stages; its own progress bars and console notices only
    when ``verbose`` (curate shows its own progress)."""
    os.environ.setdefault("RAY_DATA_PARQUET_FOOTER_NUM_ACTORS", PARQUET_FOOTER_ACTORS)
    ctx = ray.data.DataContext.get_current()
    # Output order follows input order, so re-runs write identical shards.
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = verbose
    ctx.print_on_execution_start = False
    for handler in logging.getLogger("ray.data").handlers:
        # The console handler; the file handlers keep every record.
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            handler.setLevel(logging.INFO if verbose else logging.ERROR)


def pool_args(res: StageResources) -> dict:
    """``compute``, resource and fault-tolerance arguments for an actor pool with the settings
    ``res`` (a ``ray.<name>`` section).

    Fault tolerance is set explicitly rather than left to Ray Data, whose default for actor
    pools is ``max_restarts=-1`` *and* ``max_task_retries=-1``: a batch whose actor dies is
    re-run forever, so an input that kills every worker it meets (a decoder crash with
    ``isolation.enabled: false``) would restart workers without end. We keep restarting dead
    actors (``max_restarts``, default -1: a worker lost to the OOM killer, a node failure or an
    operator's ``kill`` is replaced; Ray Data's pool expects its actors to come back) but bound
    the re-runs of the batch that was in flight (``max_task_retries``, default 3). Decoder
    crashes, hangs and memory blow-ups of a single source never get this far: the sandbox
    (``curate.media.sandbox``) turns them into rejects inside the worker. Application exceptions are
    never retried (Ray's default for actor tasks): they are bugs, and fail the run.
    """
    cpus = ray.cluster_resources().get("CPU", 1.0)
    max_actors = res.max_actors or max(res.min_actors, int(cpus))
    args: dict = {
        "compute": ray.data.ActorPoolStrategy(
            min_size=res.min_actors,
            max_size=max_actors,
            max_tasks_in_flight_per_actor=res.max_tasks_in_flight,
        ),
        "num_cpus": res.num_cpus,
        "max_restarts": res.max_restarts,
        "max_task_retries": res.max_task_retries,
    }
    if res.num_gpus:
        args["num_gpus"] = res.num_gpus
    if res.memory:
        args["memory"] = res.memory
    if res.resources:
        args["resources"] = dict(res.resources)
    return args


def map_stage(
    ds: ray.data.Dataset,
    stage: type[Stage],
    config: CurateConfig,
    batch_size: int = 1,
    **runtime,
) -> ray.data.Dataset:
    """Run ``stage`` over ``ds`` as an actor pool with the resources of ``ray.<stage.name>``;
    each actor is built from the config sections the stage declares (``Stage.inputs``) and
    the ``runtime`` keyword arguments.

    Pools start at ``min_actors`` and grow on demand, and actors take fractional CPUs, so the
    read tasks feeding them always find a CPU (an all-CPU pool deadlocks a 2-core machine).
    """
    return ds.map_batches(
        stage,
        batch_size=batch_size,
        batch_format="pyarrow",
        fn_constructor_kwargs={**stage.inputs(config), **runtime},
        **pool_args(getattr(config.ray, stage.name)),
    )


class StageChain:
    """Stages run one after the other on each batch, in one actor: the shape of a fused
    pool (see :func:`map_stages`)."""

    def __init__(self, stages: list[tuple[type[Stage], dict]]) -> None:
        self.stages = [stage(**kwargs) for stage, kwargs in stages]

    def __call__(self, batch: pa.Table) -> pa.Table:
        for stage in self.stages:
            batch = stage(batch)
        return batch


def fuse_pools(config: CurateConfig, stages: tuple[type[Stage], ...], lead: type[Stage]) -> bool:
    """Whether ``stages`` share one pool with ``ray.<lead>``'s resources
    (``ray.phase1_pools``): under ``auto``, when none of them asks for GPUs or custom
    resources (no stage needs a node type the others do not), no other stage's ``ray``
    section is changed from its default (a fused pool would ignore it) and each may run in a
    shared actor (:meth:`Stage.shares_actor`)."""
    if config.ray.phase1_pools != "auto":
        return config.ray.phase1_pools == "fused"
    sections = {stage.name: getattr(config.ray, stage.name) for stage in stages}
    if any(res.num_gpus or res.resources for res in sections.values()):
        return False
    defaults = type(config.ray).model_fields
    if any(
        res.model_dump() != defaults[name].default.model_dump()
        for name, res in sections.items()
        if name != lead.name
    ):
        return False
    return all(stage.shares_actor(config) for stage in stages)


def map_stages(
    ds: ray.data.Dataset,
    stages: tuple[type[Stage], ...],
    config: CurateConfig,
    lead: type[Stage],
    batch_sizes: dict[str, int],
) -> ray.data.Dataset:
    """Run ``stages`` in order over ``ds``: as one pool of :class:`StageChain` actors with the
    resources of ``lead`` (``ray.<lead.name>``, one source per batch) when :func:`fuse_pools`
    says so, else a pool per stage (``batch_sizes`` by stage name, default 1)."""
    if not fuse_pools(config, stages, lead):
        for stage in stages:
            ds = map_stage(ds, stage, config, batch_size=batch_sizes.get(stage.name, 1))
        return ds
    return ds.map_batches(
        StageChain,
        batch_size=1,
        batch_format="pyarrow",
        fn_constructor_kwargs={"stages": [(s, s.inputs(config)) for s in stages]},
        **pool_args(getattr(config.ray, lead.name)),
    )


def read_shards(folder: Store) -> ray.data.Dataset:
    """The Parquet shards of ``folder`` (local or object storage) as a Ray dataset."""
    # One folder path, not a file list: Ray resolves each listed path separately, and
    # without aiohttp its fsspec probe fails from the second path on.
    return ray.data.read_parquet(folder.path(), filesystem=folder.fs, file_extensions=["parquet"])
