"""Where did each stage run? Actor placement per node, read from a Ray cluster's GCS.

Run it on any node of the cluster (or with the cluster's address) during or after a
``curate run``; finished actors stay in the GCS's actor table::

    python scripts/ray_placement.py [--address auto|HOST:6379|local] [--json]

Each curate stage runs as a Ray Data actor pool whose actors are named after the stage class,
e.g. ``MapWorker(MapBatches(EmbedStage))``; the table counts them per node, next to each
node's resources, so an embed pool declared with ``ray.embed.num_gpus: 1`` shows up on GPU
nodes only. Needs no dashboard (``ray list actors --detail`` is the public equivalent where
``ray[default]`` is installed); uses Ray's developer state API ``ray._private.state``.
With token auth, run it with the cluster's ``RAY_AUTH_MODE`` (and token) in the environment.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter


def placement(address: str) -> dict:
    """``{"nodes": [{id, ip, alive, head, resources}], "actors": [{class, node, pid,
    state}]}`` of the cluster at ``address``."""
    import ray
    from ray._private import state

    ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    try:
        nodes = [
            {
                "id": n["NodeID"],
                "ip": n["NodeManagerAddress"],
                "alive": n["Alive"],
                "head": "node:__internal_head__" in n["Resources"],
                "resources": n["Resources"],
            }
            for n in ray.nodes()
        ]
        actors = [
            {
                "class": a["ActorClassName"],
                "node": a["Address"]["NodeID"],
                "pid": a["Pid"],
                "state": a["State"],
            }
            for a in state.actors().values()
        ]
    finally:
        ray.shutdown()
    return {"nodes": nodes, "actors": actors}


def summary_text(data: dict) -> str:
    names = {}
    lines = ["nodes:"]
    for i, n in enumerate(sorted(data["nodes"], key=lambda n: (not n["head"], n["ip"]))):
        names[n["id"]] = f"n{i}"
        res = n["resources"]
        lines.append(
            f"  n{i} {n['id'][:8]} {n['ip']:<15} {'head' if n['head'] else 'worker':<6} "
            f"CPU={res.get('CPU', 0):g} GPU={res.get('GPU', 0):g}"
            + ("" if n["alive"] else "  (dead)")
        )
    counts = Counter((a["class"], a["node"]) for a in data["actors"] if a["pid"])
    lines.append("actors that ran, per node:")
    for cls in sorted({c for c, _ in counts}):
        here = sorted((names.get(node, node[:8]), k) for (c, node), k in counts.items() if c == cls)
        lines.append(f"  {cls:<48} " + ", ".join(f"{name}×{k}" for name, k in here))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--address",
        default="auto",
        help="GCS address (default: auto); 'local' starts a throwaway local instance and "
        "reports on it (a smoke test of this script)",
    )
    p.add_argument("--json", action="store_true", help="print nodes and actors as JSON")
    args = p.parse_args()
    data = placement(args.address)
    print(json.dumps(data) if args.json else summary_text(data))


if __name__ == "__main__":
    main()
