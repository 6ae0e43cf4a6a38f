"""Running ``curate run`` with the before code (a git ref in a temporary worktree, or an
existing checkout) and with the working tree, and comparing what they wrote."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.common.curate_run import code_env, log_tail, run_curate
from scripts.common.paths import REPO_ROOT
from scripts.compare.outputs import compare_outputs, print_summary
from scripts.compare.tables import TableReport

RECORD_VERSION = 1


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def _ref_exists(ref: str) -> bool:
    try:
        _git(REPO_ROOT, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        return True
    except (subprocess.CalledProcessError, OSError):
        return False


def code_state(root: Path) -> dict[str, Any]:
    """Which code a checkout holds: commit and a hash of its uncommitted tracked changes."""
    try:
        commit = _git(root, "rev-parse", "HEAD")
        diff = _git(root, "diff", "HEAD", "--", "curate", "stages", "pyproject.toml")
    except (subprocess.CalledProcessError, OSError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": hashlib.sha256(diff.encode()).hexdigest() if diff else ""}


@contextlib.contextmanager
def worktree(ref: str, parent: Path) -> Iterator[Path]:
    """A detached git worktree of ``ref``, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="before-", dir=parent))
    path.rmdir()
    _git(REPO_ROOT, "worktree", "add", "--detach", str(path), ref)
    try:
        yield path
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(path)],
            cwd=REPO_ROOT,
            capture_output=True,
            check=False,
        )
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run(
            ["git", "worktree", "prune"], cwd=REPO_ROOT, capture_output=True, check=False
        )


def check_imports(code_root: Path) -> None:
    """Fail early when ``python -m curate.cli`` in ``code_root`` would not import its code."""
    probe = "import curate, stages; print(curate.__file__); print(stages.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=code_root,
        env=code_env(code_root),
        capture_output=True,
        text=True,
        check=False,
    )
    files = out.stdout.split()
    root = code_root.resolve()
    if (
        out.returncode
        or len(files) != 2
        or not all(Path(f).resolve().is_relative_to(root) for f in files)
    ):
        raise SystemExit(
            f"compare_outputs: curate/stages do not import from {code_root}:\n"
            f"{out.stdout}{out.stderr}"
        )


def run_checkout(
    code_root: Path, config: Path, inputs: Sequence[str], output: Path, log: Path
) -> tuple[int, float]:
    """``curate run --fresh`` of the code in ``code_root``; returns (exit status, seconds)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    extra = ("--fresh", "--no-progress")
    rc, seconds = run_curate(config, inputs, output, *extra, log=log, code_root=code_root)
    if rc == 0 and not (output / "manifest.json").is_file():
        rc = -1000  # e.g. a curate.cli without a __main__ block
        with log.open("a") as f:
            f.write("compare_outputs: the run wrote no manifest.json\n")
    return rc, seconds


def _resolve_config(name: str, root: Path) -> Path:
    path = Path(name)
    if not path.is_absolute() and (root / path).is_file():
        return (root / path).resolve()
    return path.resolve()


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _labels(configs: Sequence[str]) -> list[str]:
    labels: list[str] = []
    for name in configs:
        stem = Path(name).stem
        label, n = stem, 2
        while label in labels:
            label, n = f"{stem}-{n}", n + 1
        labels.append(label)
    return labels


@dataclass
class Plan:
    label: str
    config_before: Path
    config_after: Path
    before: Path
    after: Path
    record: dict[str, Any]
    reuse_why: str = ""
    """Empty when the kept before output can be used; else why it is (re-)run."""

    @property
    def name(self) -> str:
        """The config's file name, as the report shows it."""
        return Path(self.record["config"]).name


def _record_path(output: Path) -> Path:
    return output.parent / f"{output.name}.run.json"


def _check_reuse(plan: Plan) -> str:
    path = _record_path(plan.before)
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        return "no record of a kept before run"
    if kept.get("returncode") != 0 or not (plan.before / "manifest.json").is_file():
        return "the kept before run did not finish"
    for key in ("version", "commit", "dirty", "config_sha256", "inputs"):
        if kept.get(key) != plan.record.get(key):
            return f"the kept before run differs in {key}"
    return ""


def _before_code(args: argparse.Namespace) -> tuple[Path | None, dict[str, Any], str] | int:
    """The before checkout (None: a worktree of the ref, made only when a run needs it), its
    code state, and the ref or a description; an exit status on a usage error."""
    if args.before_dir:
        before_root = Path(args.before_dir).resolve()
        if not (before_root / "curate").is_dir():
            print(f"compare_outputs: {before_root} has no curate/ package", file=sys.stderr)
            return 2
        return before_root, code_state(before_root), f"checkout {before_root}"
    ref = args.before or ("origin/main" if _ref_exists("origin/main") else "HEAD")
    if not _ref_exists(ref):
        print(f"compare_outputs: unknown git ref {ref!r}", file=sys.stderr)
        return 2
    return None, {"commit": _git(REPO_ROOT, "rev-parse", f"{ref}^{{commit}}"), "dirty": ""}, ref


def _plans(
    args: argparse.Namespace,
    work: Path,
    before_root: Path | None,
    state: dict[str, Any],
    inputs: list[str],
) -> list[Plan]:
    plans = []
    for name, label in zip(args.configs, _labels(args.configs)):
        config_after = _resolve_config(name, REPO_ROOT)
        config_before = _resolve_config(name, before_root) if before_root else config_after
        plan = Plan(
            label, config_before, config_after,
            work / "before" / label, work / "after" / label,
            {"version": RECORD_VERSION, **state, "config": name,
             "config_sha256": _sha256(config_before), "inputs": inputs},
        )  # fmt: skip
        plan.reuse_why = _check_reuse(plan) if args.reuse else "--reuse not given"
        plans.append(plan)
    return plans


def _run_side(side: str, p: Plan, code_root: Path, inputs: list[str]) -> str:
    """Run one side of a plan and record it next to its output; "" or why it failed."""
    before = side == "before"
    output, config = (p.before, p.config_before) if before else (p.after, p.config_after)
    log = output.parent / f"{p.label}.log"
    tag = "[before]" if before else "[after] "
    why = f" ({p.reuse_why})" if before else ""
    print(f"{tag} {p.label}: running{why}; log {log}", flush=True)
    rc, seconds = run_checkout(code_root, config, inputs, output, log)
    record = {**p.record}
    if not before:
        record.update(code_state(REPO_ROOT), config_sha256=_sha256(p.config_after))
    record.update(returncode=rc, seconds=round(seconds, 1), code_root=str(code_root))
    _record_path(output).write_text(json.dumps(record, indent=2) + "\n")
    print(f"{tag} {p.label}: exit {rc} after {seconds:.0f} s", flush=True)
    if rc:
        print(log_tail(log), file=sys.stderr)
        return f"{side} run exit {rc}"
    return ""


def run_and_compare(args: argparse.Namespace) -> int:
    inputs = [i if "://" in i else os.path.abspath(i) for i in args.inputs]
    for i in inputs:
        if "://" not in i and not any(c in i for c in "*?[") and not os.path.exists(i):
            print(f"compare_outputs: input {i} does not exist", file=sys.stderr)
            return 2
    before = _before_code(args)
    if isinstance(before, int):
        return before
    before_root, state, ref = before
    what = ref if before_root is not None else f"ref {ref}"
    print(
        f"before: {what} (commit {str(state['commit'])[:10]}"
        f"{', uncommitted changes' if state.get('dirty') else ''})"
    )
    print(f"after:  working tree {REPO_ROOT}")
    print(f"inputs: {' '.join(inputs)}")

    with contextlib.ExitStack() as stack:
        if args.keep:
            work = Path(args.keep).resolve()
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="compare-")))
        plans = _plans(args, work, before_root, state, inputs)
        if before_root is None and any(p.reuse_why for p in plans):
            before_root = stack.enter_context(worktree(ref, work))
            for p in plans:
                if not Path(p.record["config"]).is_absolute():
                    p.config_before = _resolve_config(p.record["config"], before_root)
                    p.record["config_sha256"] = _sha256(p.config_before)
        if before_root is not None and any(p.reuse_why for p in plans):
            check_imports(before_root)
        check_imports(REPO_ROOT)

        failed: dict[str, str] = {}
        reports: list[TableReport] = []
        for p in plans:
            if not p.config_after.is_file() or not p.config_before.is_file():
                failed[p.name] = "config file missing"
                continue
            if p.reuse_why:
                assert before_root is not None
                if why := _run_side("before", p, before_root, inputs):
                    failed[p.name] = why
                    continue
            else:
                print(f"[before] {p.label}: reusing {p.before}")
            if why := _run_side("after", p, REPO_ROOT, inputs):
                failed[p.name] = why
                continue
            table_reports = compare_outputs(p.name, p.before, p.after, args.strict_clips)
            if _sha256(p.config_before) != _sha256(p.config_after) and table_reports:
                table_reports[0].notes.append(
                    f"the config files differ: {p.config_before} vs {p.config_after}"
                )
            reports.extend(table_reports)
        print_summary(reports, failed)
        if args.keep:
            print(f"\noutputs kept in {work}/before and {work}/after")
    return 0 if reports and not failed and all(r.identical for r in reports) else 1
