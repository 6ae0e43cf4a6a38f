#!/usr/bin/env bash
# Submit a `curate run` to a Ray cluster as a Ray job.
#
#   scripts/submit_ray_job.sh --address http://HEAD:8265 \
#       --config configs/cluster.yaml \
#       --input s3://my-bucket/raw/ --output s3://my-bucket/curated/run-001 \
#       [--set ray.analyze.max_actors=64]... [--aws] [--pass-env NAME]... [--pip PKG]... \
#       [--submission-id ID] [--no-wait] [--dry-run]
#
# --dry-run prints the `ray job submit` command instead of running it (variable values in
# env_vars shown as ***).
#
# What happens:
#   * `ray job submit` talks to the head node's job API (the dashboard port, 8265), uploads
#     this checkout as the job's working directory (`--working-dir`, code only: .git, outputs
#     and videos are excluded, and .gitignore is honoured) and starts the entrypoint below on
#     the head node. Ray puts the working directory on every worker's PYTHONPATH, so `curate`
#     and `stages` come from this checkout on every node.
#   * The entrypoint is `python -m curate.cli run ... --ray-address auto`: inside a Ray job,
#     `auto` joins the cluster the job runs on, and the config's `ray.<stage>` resources
#     decide which node type runs each stage (embed with `num_gpus: 1` on GPU nodes, ...).
#   * The heavy dependencies (torch, PyAV, OpenCV, open_clip, ray[data]) must already be
#     installed on every node, in the same versions as the driver: bake them into the node
#     image or install them in the cluster's setup_commands
#     (deploy/ray-cluster.example.yaml does `pip install` of this repository). `--pip PKG`
#     adds small extras per job through the runtime_env `pip` field (a per-job virtualenv on
#     each node, built on first use: slow for anything large).
#   * Inputs and outputs must be reachable from every node under the same name: `s3://…`
#     URIs, or a shared filesystem mounted at the same path everywhere. A local path on the
#     machine you submit from does not exist on the cluster.
#
# Credentials:
#   * Prefer an IAM role on the nodes (the example cluster config attaches an instance
#     profile): nothing secret then travels with the job.
#   * `--aws` copies the AWS_* variables set in this shell (keys, session token, region,
#     endpoint for S3-compatible stores) into the job's runtime_env `env_vars`, which every
#     worker of the job sees. They are stored with the job's metadata and shown by the
#     dashboard to anyone who can reach it: use short-lived credentials.
#   * `--pass-env NAME` copies any other variable the same way, e.g. the API key a captioner
#     names in `api_key_env`.
#
# Authentication (Ray >= 2.5x token auth):
#   * A head started with `ray start --head` turns token auth on by itself when
#     ~/.ray/auth_token exists; `ray start --address` and `ray.init(address=…)` do not. Set
#     RAY_AUTH_MODE explicitly and identically wherever Ray starts (the cluster config
#     exports it in every node's start commands), or nodes and drivers fail to connect after
#     ~20 s.
#   * With token auth on, `ray job submit` sends the token as a bearer header when this
#     shell has RAY_AUTH_MODE=token and the token in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
#     ~/.ray/auth_token (`ray get-auth-token` on the head prints it). The job's driver and
#     workers get the mode and token from the node they run on, so never put the token into
#     the runtime_env.
#   * The submitting machine needs `pip install "ray[default]"` (the job CLI) at the cluster's
#     Ray version, and must reach port 8265 of the head (`ray dashboard CLUSTER.yaml` forwards
#     it over SSH for a launcher-made cluster).
#
# Follow a job:  ray job logs --address "$ADDRESS" --follow SUBMISSION_ID
# Stop a job:    ray job stop --address "$ADDRESS" SUBMISSION_ID

set -euo pipefail

usage() {
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-2}"
}

die() {
    echo "submit_ray_job: $*" >&2
    exit 2
}

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
address="${RAY_API_SERVER_ADDRESS:-${RAY_ADDRESS:-}}"
config=""
inputs=()
output=""
overrides=()
pass_env=()
pip_packages=()
submission_id=""
wait_flag=()
dry_run=0
aws_vars=(
    AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
    AWS_REGION AWS_DEFAULT_REGION AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3
)

while (($#)); do
    case "$1" in
        -a | --address) address="${2:?}"; shift 2 ;;
        -c | --config) config="${2:?}"; shift 2 ;;
        -i | --input) inputs+=("${2:?}"); shift 2 ;;
        -o | --output) output="${2:?}"; shift 2 ;;
        -s | --set) overrides+=("${2:?}"); shift 2 ;;
        --aws) pass_env+=("${aws_vars[@]}"); shift ;;
        --pass-env) pass_env+=("${2:?}"); shift 2 ;;
        --pip) pip_packages+=("${2:?}"); shift 2 ;;
        --submission-id) submission_id="${2:?}"; shift 2 ;;
        --no-wait) wait_flag=(--no-wait); shift ;;
        --dry-run) dry_run=1; shift ;;
        -h | --help) usage 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

[[ -n "$address" ]] || die "--address http://HEAD:8265 is required (or set RAY_API_SERVER_ADDRESS)"
[[ -n "$config" ]] || die "--config is required"
((${#inputs[@]})) || die "at least one --input is required"
[[ -n "$output" ]] || die "--output is required"

# The job runs from the uploaded copy of this checkout: the config must be inside it, and is
# named relative to it.
[[ -f "$config" ]] || die "config not found: $config"
config_abs="$(cd "$(dirname -- "$config")" && pwd)/$(basename -- "$config")"
case "$config_abs" in
    "$repo"/*) config_rel="${config_abs#"$repo"/}" ;;
    *) die "config must be inside $repo (it is uploaded with the working directory): $config" ;;
esac

for path in "${inputs[@]}" "$output"; do
    case "$path" in
        *://*) ;;
        /*) echo "submit_ray_job: note: $path must exist under this path on every node" >&2 ;;
        *) die "use s3:// URIs or absolute paths on a shared filesystem, not $path" ;;
    esac
done

submission_id="${submission_id:-curate-$(date -u +%Y%m%d-%H%M%S)}"

# runtime_env as JSON, built by Python so that no value passes through shell quoting.
runtime_env="$(
    python3 - "$dry_run" "${#pass_env[@]}" ${pass_env[@]+"${pass_env[@]}"} \
        ${pip_packages[@]+"${pip_packages[@]}"} <<'PY'
import json
import os
import sys

masked, n = sys.argv[1] == "1", int(sys.argv[2])
names, pip = sys.argv[3 : 3 + n], sys.argv[3 + n :]
env = {name: "***" if masked else os.environ[name] for name in names if os.environ.get(name)}
runtime_env = {
    "env_vars": env,
    # Kept out of the upload: version control, run outputs, local videos and caches.
    "excludes": [
        "/.git/", "/out*/", "/artifacts/", "/test-artifacts/", "__pycache__/",
        "*.mp4", "*.mkv", "*.mov", "*.webm", "*.parquet",
    ],
}
if pip:
    runtime_env["pip"] = pip
print(json.dumps(runtime_env))
PY
)"

entrypoint=(python -m curate.cli run --config "$config_rel")
for path in "${inputs[@]}"; do
    entrypoint+=(--input "$path")
done
entrypoint+=(--output "$output" --ray-address auto --no-progress)
for kv in ${overrides[@]+"${overrides[@]}"}; do
    entrypoint+=(--set "$kv")
done

command=(
    ray job submit
    --address "$address"
    --submission-id "$submission_id"
    --working-dir "$repo"
    --runtime-env-json "$runtime_env"
    ${wait_flag[@]+"${wait_flag[@]}"}
    --
    "${entrypoint[@]}"
)

if ((dry_run)); then
    printf '%q ' "${command[@]}"
    printf '\n'
    exit 0
fi
exec "${command[@]}"
