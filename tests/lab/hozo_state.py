"""Reads hozo's state for lab tests: version 2 (state.json summary + runs/<job>/<run id>.json) and
version 1 (every run inside state.json). Read-only; never takes hozo's locks (tests read after a run).

  hozo_state.py STATE JOB EXPR          print EXPR with r = the job's newest run (running first)
  hozo_state.py STATE JOB EXPR RUN_ID   the same for the run RUN_ID
  hozo_state.py --restores STATE JOB EXPR   print EXPR with rs = the job's restores (oldest first)
"""
import json
import os
import sys


def _job_entry(state_path, job):
    with open(state_path) as f:
        return json.load(f)["jobs"][job]


def runs(state_path, job):
    """Every run of JOB, full records, oldest first."""
    entry = _job_entry(state_path, job)
    if "runs" in entry:  # version 1
        return list(entry["runs"])
    out = []
    job_dir = os.path.join(os.path.dirname(state_path), "runs", job)
    for name in os.listdir(job_dir) if os.path.isdir(job_dir) else []:
        if name.endswith(".json") and not name.startswith(".") and name != "restores.json":
            with open(os.path.join(job_dir, name)) as f:
                out.append(json.load(f))
    out.sort(key=lambda r: (r.get("started", ""), r.get("run_id", "")))
    return out


def run(state_path, job, run_id):
    """The full record of RUN_ID."""
    found = [r for r in runs(state_path, job) if r.get("run_id") == run_id]
    if not found:
        raise KeyError(f"{job}: no run {run_id}")
    return found[0]


def restores(state_path, job):
    """Every restore of JOB, oldest first ([] when none)."""
    with open(state_path) as f:
        entry = json.load(f)["jobs"].get(job, {})
    if "restores" in entry:  # version 1
        return list(entry["restores"])
    path = os.path.join(os.path.dirname(state_path), "runs", job, "restores.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(json.load(f).get("restores", []))


def newest(state_path, job):
    """The newest run of JOB (a running one first), full record."""
    entry = _job_entry(state_path, job)
    if "runs" in entry:
        return entry["runs"][-1]
    slim = (entry.get("running") or [None])[-1] or entry.get("last")
    if slim is None:
        raise KeyError(f"{job}: never ran")
    try:
        return run(state_path, job, slim["run_id"])
    except (KeyError, OSError, ValueError):
        return slim


if __name__ == "__main__":
    if sys.argv[1] == "--restores":
        rs = restores(sys.argv[2], sys.argv[3])
        print(eval(sys.argv[4]))
        sys.exit(0)
    path, job_name, expr = sys.argv[1:4]
    r = run(path, job_name, sys.argv[4]) if len(sys.argv) > 4 else newest(path, job_name)
    print(eval(expr))
