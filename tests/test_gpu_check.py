"""``benchmarks/gpu_check.py --tiny`` runs end to end (on a CPU: the CUDA figures are null with a
reason) and writes every field, so the GPU check cannot rot between GPU runs."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def positive(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_tiny_gpu_check_writes_every_figure(tmp_path, digits_cache):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "GLOW_LIGHTNING_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", "--tiny", "--threads", "1",
         "--out", str(out), "--train-arg", f"data.cache_dir={digits_cache}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| phase | figure | value |" in done.stdout
    report = json.loads(out.read_text())

    assert report["tiny"] is True and report["command"].startswith("python -m benchmarks.gpu")
    assert report["timestamp"] and report["time_limit_s"] == 290
    device = report["device"]
    assert {"type", "name", "torch", "cuda"} <= set(device)
    cuda = device["type"] == "cuda"
    phases = report["phases"]
    assert set(phases) == {"cli", "train_p", "memory", "sample", "compile"}
    for name, phase in phases.items():
        assert phase["status"] == "ok", (name, phase)

    cli = phases["cli"]
    assert cli["returncode"] == 0 and math.isfinite(cli["test_bpd"]) and cli["test_bpd"] > 0
    assert positive(cli["wall_s"]) and positive(cli["images_per_s_end_to_end"])
    assert cli["steps"] == 4 and "train" in cli["command"]
    assert cli["images_per_s_progress_bar"] is None or positive(cli["images_per_s_progress_bar"])

    modes = phases["train_p"]["modes"]
    assert set(modes) == {"fp32", "bf16_nets", "bf16_autocast"}
    for mode in modes.values():
        assert mode["status"] == "ok", mode
        assert positive(mode["images_per_s"]) and positive(mode["step_ms"])
        assert mode["loss_finite"]

    memory = phases["memory"]
    for mode in ("standard", "memory_saving"):
        entry = memory["modes"][mode]
        assert entry["status"] == "ok" and positive(entry["step_ms"]) and entry["loss_finite"]
        for field in ("state_mib", "peak_mib", "activation_mib"):
            if cuda:
                assert positive(entry[field]), (mode, field)
            else:
                assert field in entry and entry[field] is None, (mode, field)
        if not cuda:
            assert entry["reason"] == "no CUDA device"
    if not cuda:
        assert memory["reason"] == "no CUDA device"

    for key in ("config_s", "large"):
        entry = phases["sample"][key]
        assert entry["status"] == "ok", entry
        assert positive(entry["latency_ms"]) and entry["nonfinite_pixels"] == 0
        assert entry["temperature"] == 0.7

    compiled = phases["compile"]
    for key in ("eager", "compiled"):
        assert compiled[key]["status"] == "ok", compiled[key]
        assert positive(compiled[key]["step_ms"]) and compiled[key]["loss_finite"]
    assert positive(compiled["compiled"]["first_step_s"]) and positive(compiled["speedup"])
    assert positive(report["total_wall_s"])


def test_a_time_limit_skips_phases_and_a_failing_run_sets_the_exit_code(tmp_path):
    """``--time-limit 0`` records every phase as skipped (exit 0: the run did not fail); a
    command-line run with a bad key is an error and the exit code says so."""
    out = tmp_path / "skipped.json"
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--tiny", "--out", str(out)]
    done = subprocess.run([*cmd, "--time-limit", "0"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    phases = json.loads(out.read_text())["phases"]
    assert all(p["status"] == "skipped" and "time limit" in p["reason"] for p in phases.values())

    bad = tmp_path / "bad.json"
    done = subprocess.run([*cmd[:-1], str(bad), "--phases", "cli", "--train-arg",
                           "model.stepz=1"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "WANDB_MODE": "offline"})
    assert done.returncode == 1
    report = json.loads(bad.read_text())
    assert report["phases"]["cli"]["status"] == "error"
    assert "stepz" in report["phases"]["cli"]["error"]
    assert report["phases"]["train_p"] == {"status": "skipped", "reason": "not in --phases"}
