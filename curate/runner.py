"""Ray session handling and stage placement."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import ray
import ray.data

from curate.config import CurateConfig, StageResources
from curate.stage import Stage
from curate.storage import Store

log = logging.getLogger(__name__)

# Ray 2.60 has no named map_batches parameter for an actor pool's max_restarts and
# max_task_retries yet: they travel as ray_remote_args, which Ray deprecates (for 2.64) with a
# warning per pool. Silence only that message; revisit when its replacement lands.
warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")


@contextmanager
def ray_session(config: CurateConfig, address: str | None = None) -> Iterator[None]:
    """Join ``address`` (``auto``, ``ray://…``), or start a local Ray instance and stop it
    afterwards. An already initialised Ray (a notebook, a test session) is reused as is."""
    if ray.is_initialized():
        yield
        return
    address = address or config.ray.address
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(
            num_cpus=config.ray.num_cpus,
            include_dashboard=False,
            logging_level=logging.WARNING,
        )
    try:
        yield
    finally:
        ray.shutdown()


PARQUET_FOOTER_ACTORS = "2"
"""Ray Data 2.60 reads Parquet footers with a fleet of 32 actors per read by default: on a
small machine that costs more than the reads. Our tables are a few large shards.
``RAY_DATA_PARQUET_FOOTER_NUM_ACTORS`` in the environment overrides this."""


def configure_data_context(progress: bool = True) -> None:
    os.environ.setdefault("RAY_DATA_PARQUET_FOOTER_NUM_ACTORS", PARQUET_FOOTER_ACTORS)
    ctx = ray.data.DataContext.get_current()
    # Output order follows input order, so re-runs write identical shards.
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = progress
    ctx.print_on_execution_start = False


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
    (``curate.sandbox``) turns them into rejects inside the worker. Application exceptions are
    never retried (Ray's default for actor tasks): they are bugs, and fail the run.
    """
    cpus = ray.cluster_resources().get("CPU", 1.0)
    max_actors = res.max_actors or max(res.min_actors, int(cpus))
    args: dict = {
        "compute": ray.data.ActorPoolStrategy(min_size=res.min_actors, max_size=max_actors),
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


def read_shards(folder: Store) -> ray.data.Dataset:
    """The Parquet shards of ``folder`` (local or object storage) as a Ray dataset."""
    # One folder path, not a file list: Ray resolves each listed path separately, and
    # without aiohttp its fsspec probe fails from the second path on.
    return ray.data.read_parquet(folder.path(), filesystem=folder.fs, file_extensions=["parquet"])
