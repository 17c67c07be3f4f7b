"""One GPU check: the numbers a GPU machine gives, in one JSON file and one table (≤ 5 min).

    python -m benchmarks.gpu_check --out gpu_check.json          # on one GPU
    python -m benchmarks.gpu_check --tiny --out gpu_check.json   # tiny shapes, any CPU (a test)

Phases, each guarded (a failing phase records its error and the rest still run), in this order:

``cli``
    the default experiment (digits Glow) for 100 steps through the real command line in a
    subprocess: ``glow-lightning train trainer.accelerator=gpu trainer.devices=1
    trainer.strategy=ddp trainer.budget_minutes=null trainer.max_steps=100
    optim.decay_steps=100 logger.kind=csv ...``; its printed ``test/bpd``, wall time, images/s
    end to end (steps × batch / wall time, process start, test and media included) and, where
    the progress bar printed one, the training rate it showed. The script's exit code is
    non-zero only if this run fails.
``train_p``
    config P (the paper's CIFAR-10 Glow: L=3, K=32, width 512, affine, LU 1×1 conv, 3×32×32,
    batch 64 per GPU as in the reference) training images/s: float32; ``net_dtype=bfloat16``,
    the project's own option (coupling networks in bfloat16 under autocast, the flow's
    transforms, 1×1 convs and log-dets in float32); plain ``torch.autocast(bfloat16)`` around
    the whole forward of a float32 model (1×1 convs in bfloat16 too). Warm-up steps, then timed
    steps between ``torch.cuda.synchronize()`` calls. Step: mean NLL, ``zero_grad``,
    ``backward``, ``Adam(fused=True).step``, as in ``bench_train``.
``memory``
    peak GPU memory (``torch.cuda.max_memory_allocated``, reset after model, optimiser state and
    one warm-up step) of config P training steps without and with ``memory_saving=True``, and
    their step times. On CPU the memory figures are null with a reason.
``sample``
    sampling latency: 64 samples at T=0.7 from config S (L=3, K=8, width 128), and one 256×256
    sample from the paper's CelebA-HQ Glow (L=6, K=32, width 512, additive, 3×256×256).
``compile``
    config S training step compiled with ``compile_flow`` against eager (compile time apart),
    in a child process that is stopped at the time limit.

``--time-limit`` (default 290 s) skips the phases that would start after it; the compile child
gets only what is left of it. Models are untrained (ActNorm initialised on synthetic data).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks import common

TEMPERATURE = 0.7
PHASES = ("cli", "train_p", "memory", "sample", "compile")
NO_CUDA = "no CUDA device"


class Settings:
    """Shapes, batch sizes and step counts: the real ones or ``--tiny`` ones."""

    def __init__(self, tiny: bool) -> None:
        self.tiny = tiny
        if tiny:
            self.shape = (3, 16, 16)
            self.config_p = dict(levels=2, steps=2, hidden=16)
            self.config_s = dict(levels=2, steps=1, hidden=8)
            self.batch_p, self.batch_s = 4, 4
            self.warmup, self.timed = 1, 2
            self.n_samples = 8
            self.large_shape = (3, 16, 16)
            self.large = dict(levels=2, steps=1, hidden_channels=8, coupling="additive")
            self.sample_reps = 2
        else:
            self.shape = common.SHAPE_S
            self.config_p = dict(common.CONFIG_P)
            self.config_s = dict(common.CONFIG_S)
            self.batch_p, self.batch_s = 64, 64
            self.warmup, self.timed = 5, 20
            self.n_samples = 64
            self.large_shape = (3, 256, 256)  # configs/experiment/celebahq_glow.yaml
            self.large = dict(levels=6, steps=32, hidden_channels=512, coupling="additive")
            self.sample_reps = 5


# ----------------------------------------------------------------------------- helpers


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(shape: tuple[int, ...], cfg: dict, device: torch.device, **fields: Any):
    from glow_lightning.flows import build_flow

    torch.manual_seed(0)
    flow = build_flow(shape, levels=cfg["levels"], steps=cfg["steps"],
                      hidden_channels=cfg["hidden"], **fields)
    return flow.to(device)


def batches_on(shape: tuple[int, ...], batch: int, device: torch.device, count: int = 4):
    return [x.to(device) for x in common.synthetic_batches(shape, batch, count, seed=0)]


def train_step(flow: torch.nn.Module, opt: torch.optim.Optimizer, batches: list[torch.Tensor],
               autocast: bool = False) -> Callable[[], torch.Tensor]:
    """One training step as in ``bench_train``: loss in bits/dim (up to a constant)."""
    state = {"i": 0}
    dims = batches[0][0].numel()

    def step() -> torch.Tensor:
        x = batches[state["i"] % len(batches)]
        state["i"] += 1
        ctx = (torch.autocast(x.device.type, dtype=torch.bfloat16) if autocast
               else contextlib.nullcontext())
        with ctx:
            log_prob = flow.log_prob(x)
        loss = -log_prob.float().mean() / (dims * math.log(2))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def timed_steps(step: Callable[[], torch.Tensor], warmup: int, steps: int,
                device: torch.device) -> tuple[float, float]:
    """(seconds for ``steps`` steps after ``warmup`` steps, the last loss)."""
    loss = torch.tensor(float("nan"))
    for _ in range(warmup):
        loss = step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    sync(device)
    return time.perf_counter() - t0, float(loss)


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def mib(n_bytes: int) -> float:
    return round(n_bytes / 2**20, 1)


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def guarded(fn: Callable[[], dict]) -> dict:
    """``fn()`` with ``status: ok``, or ``status: error`` and the error string."""
    t0 = time.perf_counter()
    try:
        out = {"status": "ok", **fn()}
    except Exception as exc:  # one failing phase must not stop the others
        traceback.print_exc()
        out = {"status": "error", "error": error_text(exc)}
    out["wall_s"] = round(time.perf_counter() - t0, 2)
    return out


# ----------------------------------------------------------------------------- phases


def phase_train_p(s: Settings, device: torch.device) -> dict:
    modes = {
        "fp32": ({}, False, "float32 model, no autocast"),
        "bf16_nets": ({"net_dtype": "bfloat16"}, False,
                      "model.net_dtype=bfloat16 (the project's option): coupling networks in "
                      "bfloat16, transforms, 1x1 convs and log-dets in float32"),
        "bf16_autocast": ({}, True, "float32 model, torch.autocast(bfloat16) around the whole "
                                    "forward (1x1 convs in bfloat16 too)"),
    }
    results: dict[str, dict] = {}
    for name, (fields, autocast, what) in modes.items():
        def one(fields: dict = fields, autocast: bool = autocast, what: str = what) -> dict:
            flow = build(s.shape, s.config_p, device, **fields)
            opt = common.adam(flow.parameters())
            step = train_step(flow, opt, batches_on(s.shape, s.batch_p, device), autocast)
            seconds, loss = timed_steps(step, s.warmup, s.timed, device)
            del flow, opt, step
            free(device)
            return {"what": what, "images_per_s": round(s.batch_p * s.timed / seconds, 2),
                    "step_ms": round(1000 * seconds / s.timed, 2), "last_loss_bpd": loss,
                    "loss_finite": math.isfinite(loss)}
        results[name] = guarded(one)
        free(device)  # also after a failure (out of memory, say)
    return {"config": {**s.config_p, "shape": list(s.shape), "coupling": "affine",
                       "permutation": "invconv_lu"},
            "batch": s.batch_p, "warmup_steps": s.warmup, "timed_steps": s.timed,
            "modes": results}


def phase_memory(s: Settings, device: torch.device) -> dict:
    cuda = device.type == "cuda"
    results: dict[str, dict] = {}
    for name, saving in (("standard", False), ("memory_saving", True)):
        def one(saving: bool = saving) -> dict:
            free(device)
            flow = build(s.shape, s.config_p, device, memory_saving=saving)
            opt = common.adam(flow.parameters())
            step = train_step(flow, opt, batches_on(s.shape, s.batch_p, device))
            step()  # ActNorm init and Adam state
            opt.zero_grad(set_to_none=True)
            sync(device)
            state = torch.cuda.memory_allocated(device) if cuda else None
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            seconds, loss = timed_steps(step, 0, max(1, s.timed // 4), device)
            peak = torch.cuda.max_memory_allocated(device) if cuda else None
            out: dict[str, Any] = {
                "step_ms": round(1000 * seconds / max(1, s.timed // 4), 2),
                "state_mib": mib(state) if state is not None else None,
                "peak_mib": mib(peak) if peak is not None else None,
                "activation_mib": mib(peak - state) if peak is not None and state is not None
                else None,
                "loss_finite": math.isfinite(loss)}
            if not cuda:
                out["reason"] = NO_CUDA
            del flow, opt, step
            free(device)
            return out
        results[name] = guarded(one)
        free(device)
    out = {"config": {**s.config_p, "shape": list(s.shape)}, "batch": s.batch_p,
           "what": "state: memory_allocated after a warm-up step with the gradients freed "
                   "(parameters, Adam state, the batches); peak: max_memory_allocated over the "
                   "timed steps; activation = peak - state (activations, gradients and "
                   "temporaries of a step, as benchmarks/memprobe.py on CPU)",
           "modes": results}
    if not cuda:
        out["reason"] = NO_CUDA
    return out


def sample_latency(flow: torch.nn.Module, n: int, reps: int, device: torch.device
                   ) -> dict:
    flow.sample(n, TEMPERATURE)  # warm-up
    sync(device)
    times, bad = [], 0
    for _ in range(reps):
        t0 = time.perf_counter()
        x = flow.sample(n, TEMPERATURE)
        sync(device)
        times.append(time.perf_counter() - t0)
        bad += int((~torch.isfinite(x)).sum())
    return {"latency_ms": round(1000 * statistics.median(times), 2), "reps": reps,
            "nonfinite_pixels": bad}


def init_actnorm(flow: torch.nn.Module, shape: tuple[int, ...], batch: int,
                 device: torch.device) -> torch.nn.Module:
    """One forward on synthetic data initialises the ActNorms; then eval mode."""
    flow.train()
    with torch.no_grad():
        flow.log_prob(batches_on(shape, batch, device, count=1)[0])
    return flow.eval()


def phase_sample(s: Settings, device: torch.device) -> dict:
    def small() -> dict:
        flow = init_actnorm(build(s.shape, s.config_s, device), s.shape, 16, device)
        out = {"config": {**s.config_s, "shape": list(s.shape)}, "n": s.n_samples,
               "temperature": TEMPERATURE, **sample_latency(flow, s.n_samples, s.sample_reps,
                                                            device)}
        del flow
        free(device)
        return out

    def large() -> dict:
        from glow_lightning.flows import build_flow

        torch.manual_seed(0)
        flow = build_flow(s.large_shape, **s.large).to(device)
        flow = init_actnorm(flow, s.large_shape, 2, device)
        out = {"config": {**s.large, "shape": list(s.large_shape), "permutation": "invconv_lu",
                          "source": "tiny stand-in" if s.tiny else
                          "the paper's CelebA-HQ Glow (configs/experiment/celebahq_glow.yaml)"},
               "n": 1, "temperature": TEMPERATURE,
               **sample_latency(flow, 1, max(1, s.sample_reps - 2), device)}
        del flow
        free(device)
        return out

    return {"config_s": guarded(small), "large": guarded(large)}


def phase_compile(s: Settings, device: torch.device, backend: str,
                  partial: Callable[[dict], None] = lambda _: None) -> dict:
    """Eager against ``compile_flow`` at config S (run in a child process by ``main``);
    ``partial`` gets the result so far before the compilation starts."""
    from glow_lightning.flows import compile_flow

    data = batches_on(s.shape, s.batch_s, device)

    def eager() -> dict:
        flow = build(s.shape, s.config_s, device)
        step = train_step(flow, common.adam(flow.parameters()), data)
        seconds, loss = timed_steps(step, s.warmup, s.timed, device)
        return {"step_ms": round(1000 * seconds / s.timed, 2), "loss_finite": math.isfinite(loss)}

    def compiled() -> dict:
        flow = build(s.shape, s.config_s, device)
        step = train_step(flow, common.adam(flow.parameters()), data)
        step()  # eager: the ActNorm data init (compile_flow compiles after it)
        compile_flow(flow, backend=backend)
        sync(device)
        t0 = time.perf_counter()
        step()  # compiles forward and backward
        sync(device)
        compile_s = time.perf_counter() - t0
        seconds, loss = timed_steps(step, s.warmup, s.timed, device)
        return {"step_ms": round(1000 * seconds / s.timed, 2),
                "first_step_s": round(compile_s, 2), "loss_finite": math.isfinite(loss),
                "what": "first_step_s: the first compiled step, compilation included"}

    out: dict[str, Any] = {"config": {**s.config_s, "shape": list(s.shape)},
                           "batch": s.batch_s, "backend": backend, "eager": guarded(eager)}
    partial(out)
    out["compiled"] = guarded(compiled)
    if out["eager"]["status"] == out["compiled"]["status"] == "ok":
        out["speedup"] = round(out["eager"]["step_ms"] / out["compiled"]["step_ms"], 3)
    return out


def run_child_phase(args: argparse.Namespace, name: str, timeout: float) -> dict:
    """Run phase ``name`` in a child process (its own session, killed whole at ``timeout``)."""
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        result = Path(tmp) / "phase.json"
        cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--phase", name,
               "--phase-out", str(result), "--device", args.device,
               "--compile-backend", args.compile_backend, *(["--tiny"] if args.tiny else []),
               *(["--threads", str(args.threads)] if args.threads else [])]
        proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            log, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            done = json.loads(result.read_text()) if result.is_file() else {}
            return {**done, "status": "skipped",
                    "reason": f"time limit: stopped after {timeout:.0f} s (--time-limit)"}
        if proc.returncode != 0 or not result.is_file():
            return {"status": "error",
                    "error": f"child exited with {proc.returncode}: {log[-2000:]}"}
        return json.loads(result.read_text())


# ----------------------------------------------------------------------------- the CLI run


def cli_executable() -> list[str]:
    """The installed ``glow-lightning`` command beside this interpreter, else on PATH, else
    ``python -m glow_lightning.cli``."""
    beside = Path(sys.executable).parent / "glow-lightning"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("glow-lightning")
    return [found] if found else [sys.executable, "-m", "glow_lightning.cli"]


def cli_words(s: Settings, device: torch.device, out_dir: Path, extra: list[str]) -> list[str]:
    steps = 4 if s.tiny else 100
    words = ["train", "trainer.budget_minutes=null", f"trainer.max_steps={steps}",
             f"optim.decay_steps={steps}", "trainer.max_time=null", "logger.kind=csv",
             f"out_dir={out_dir}", "run_name=gpu-check"]
    if device.type == "cuda":
        words += ["trainer.accelerator=gpu", "trainer.devices=1", "trainer.strategy=ddp"]
    else:
        words += ["trainer.accelerator=cpu", "trainer.devices=1", "trainer.strategy=auto",
                  "trainer.num_threads=1"]
    if s.tiny:
        words += ["optim.warmup_steps=2", "data.max_train=64", "data.max_test=32",
                  "data.batch_size=16",
                  "model.levels=2", "model.steps=1", "model.hidden_channels=8",
                  "callbacks.num_samples=4", "callbacks.interpolation_pairs=2",
                  "callbacks.interpolation_steps=3"]
    return words + extra


RATE = re.compile(r"Epoch \d+:[^\r\n]*?(\d+(?:\.\d+)?)(it/s|s/it)")
BPD = re.compile(r"^test/bpd = (\S+)", re.M)  # then, maybe, which checkpoint and split


def progress_rate(text: str) -> float | None:
    """Steps per second shown by the last training progress-bar update, if any."""
    found = RATE.findall(text)
    if not found:
        return None
    value, unit = found[-1]
    rate = float(value)
    return rate if unit == "it/s" else (1.0 / rate if rate else None)


def run_config(run_dir: Path) -> dict:
    import yaml

    path = run_dir / "config.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else {}


def phase_cli(s: Settings, device: torch.device, extra: list[str], timeout: float,
              keep: Path | None) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="gpu_check_run_")) if keep is None else keep
    cmd = [*cli_executable(), *cli_words(s, device, tmp, extra)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("WANDB_MODE", "offline")
    out: dict[str, Any] = {"command": " ".join(cmd)}
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        out.update(status="error", error=f"timed out after {timeout:.0f} s",
                   wall_s=round(time.perf_counter() - t0, 2))
        tail = exc.stderr or b""
        out["log_tail"] = (tail.decode(errors="replace") if isinstance(tail, bytes)
                           else tail)[-3000:]
        return out
    wall = time.perf_counter() - t0
    text = done.stdout + "\n" + done.stderr
    found = BPD.findall(done.stdout)
    bpd = float(found[-1]) if found else None
    run_dir = tmp / "gpu-check"
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    cfg = run_config(run_dir)
    steps = summary.get("steps")
    batch = cfg.get("data", {}).get("batch_size")
    devices = cfg.get("trainer", {}).get("devices", 1)
    devices = devices if isinstance(devices, int) and devices > 0 else 1
    rate = progress_rate(text)
    out.update(returncode=done.returncode, wall_s=round(wall, 2), test_bpd=bpd, steps=steps,
               batch_per_device=batch, devices=devices, run_dir=str(run_dir),
               images_per_s_end_to_end=round(steps * batch * devices / wall, 2)
               if steps and batch else None,
               images_per_s_progress_bar=round(rate * batch * devices, 2)
               if rate and batch else None,
               what="end to end: steps x batch x devices / wall time (process start, data, "
                    "test and media included); progress bar: the rate the training bar showed "
                    "last, null when it printed none")
    ok = done.returncode == 0 and bpd is not None and math.isfinite(bpd)
    out["status"] = "ok" if ok else "error"
    if not ok:
        out["error"] = (f"exit code {done.returncode}, test/bpd {bpd}" + "\n" + text[-3000:])
    if keep is None and ok:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# ----------------------------------------------------------------------------- report


def device_info(device: torch.device) -> dict:
    info: dict[str, Any] = {
        "type": device.type, "torch": torch.__version__, "cuda": torch.version.cuda,
        "python": platform.python_version(), "host_cpu": common.cpu_model(),
        "cpu_count": os.cpu_count()}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
        try:
            info.update(cuda_info(device))
        except Exception as exc:  # a missing attribute must not stop the check
            info["error"] = error_text(exc)
    else:
        info.update(name=common.cpu_model(), count=0, reason=NO_CUDA,
                    cpu_bf16_kernels=bool(common.bf16_kernels()),
                    torch_threads=torch.get_num_threads())
    return info


def cuda_info(device: torch.device) -> dict:
    props = torch.cuda.get_device_properties(device)
    return dict(name=torch.cuda.get_device_name(device), count=torch.cuda.device_count(),
                capability=".".join(map(str, torch.cuda.get_device_capability(device))),
                memory_gib=round(props.total_memory / 2**30, 1),
                cudnn=torch.backends.cudnn.version(),
                bf16_supported=torch.cuda.is_bf16_supported(),
                tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                tf32_cudnn=torch.backends.cudnn.allow_tf32,
                driver=_driver())


def _driver() -> str | None:
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20)
        return done.stdout.strip().splitlines()[0] if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def fmt(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 0.01 else f"{value:.3g}"
    return str(value)


def rows(report: dict) -> list[list[str]]:
    """(phase, figure, value, unit) lines for the printed table."""
    out: list[list[str]] = []
    ph = report["phases"]

    def status_row(phase: str, part: dict, label: str) -> bool:
        if part.get("status") == "ok":
            return True
        why = part.get("reason") or part.get("error", "")
        out.append([phase, label, part.get("status", "?"), why.splitlines()[0][:90]
                    if why else ""])
        return False

    cli = ph["cli"]
    if status_row("cli", cli, "train 100 steps"):
        out += [["cli", "test bpd", fmt(cli["test_bpd"]), "bits/dim"],
                ["cli", "wall time", fmt(cli["wall_s"]), "s"],
                ["cli", "images/s end to end", fmt(cli["images_per_s_end_to_end"]), "images/s"],
                ["cli", "images/s progress bar", fmt(cli["images_per_s_progress_bar"]),
                 "images/s"]]
    tp = ph["train_p"]
    if status_row("train_p", tp, "config P"):
        for mode, r in tp["modes"].items():
            if status_row("train_p", r, mode):
                out.append(["train_p", f"{mode} (batch {tp['batch']})",
                            fmt(r["images_per_s"]), "images/s"])
    mem = ph["memory"]
    if status_row("memory", mem, "config P"):
        for mode, r in mem["modes"].items():
            if status_row("memory", r, mode):
                note = f" ({r['reason']})" if r.get("reason") else ""
                out.append(["memory", f"{mode} peak", fmt(r["peak_mib"]), "MiB" + note])
                out.append(["memory", f"{mode} step", fmt(r["step_ms"]), "ms"])
    sm = ph["sample"]
    if status_row("sample", sm, "sampling"):
        for key, label in (("config_s", "config S"), ("large", "large")):
            r = sm[key]
            if status_row("sample", r, label):
                shape = "x".join(map(str, r["config"]["shape"]))
                out.append(["sample", f"{label}: {r['n']} at T={r['temperature']} ({shape})",
                            fmt(r["latency_ms"]), "ms"])
    cp = ph["compile"]
    if status_row("compile", cp, "config S") or "eager" in cp:
        for key in ("eager", "compiled"):
            r = cp.get(key, {"status": "skipped", "reason": "not reached"})
            if status_row("compile", r, key):
                out.append(["compile", f"{key} step (batch {cp['batch']})", fmt(r["step_ms"]),
                            "ms"])
        if cp.get("compiled", {}).get("status") == "ok":
            out.append(["compile", f"first compiled step ({cp['backend']})",
                        fmt(cp["compiled"]["first_step_s"]), "s"])
        if "speedup" in cp:
            out.append(["compile", "compiled vs eager", fmt(cp["speedup"]), "x"])
    return out


# ----------------------------------------------------------------------------- main


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="gpu_check.json", help="JSON file to write")
    p.add_argument("--tiny", action="store_true",
                   help="tiny shapes, models and step counts (runs on a CPU in about a minute)")
    p.add_argument("--time-limit", type=float, default=290.0,
                   help="seconds; phases that would start later are skipped (default 290)")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    p.add_argument("--compile-backend", default=None,
                   help="torch.compile backend (default inductor; aot_eager with --tiny)")
    p.add_argument("--phases", default=",".join(PHASES),
                   help=f"comma-separated subset of {','.join(PHASES)}")
    p.add_argument("--train-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="extra override for the command-line run (repeatable)")
    p.add_argument("--keep-run", default=None, metavar="DIR",
                   help="run the command-line training in DIR and keep it (default: a "
                        "temporary folder, removed when the run succeeds)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's; 1 with --tiny)")
    p.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    p.add_argument("--phase-out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.compile_backend is None:
        args.compile_backend = "aot_eager" if args.tiny else "inductor"
    if args.threads is None and args.tiny:
        args.threads = 1  # tiny ops on a small CPU: a second thread only adds overhead
    unknown = set(args.phases.split(",")) - set(PHASES)
    if unknown:
        p.error(f"--phases: unknown {', '.join(sorted(unknown))}; known: {', '.join(PHASES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    s = Settings(args.tiny)
    device = pick_device(args.device)
    if args.phase:  # child mode: one phase, its result as JSON
        assert args.phase == "compile", args.phase
        path = Path(args.phase_out)

        def write(result: dict) -> None:  # atomic: the parent may read it after a kill
            path.with_suffix(".tmp").write_text(json.dumps(result))
            os.replace(path.with_suffix(".tmp"), path)

        write(phase_compile(s, device, args.compile_backend, write))
        return 0

    start = time.perf_counter()
    wanted = set(args.phases.split(","))
    report: dict[str, Any] = {
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.gpu_check " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "tiny": args.tiny, "time_limit_s": args.time_limit,
        "device": device_info(device), "phases": {}}
    print(f"gpu_check on {report['device']['name']} ({device.type}), torch "
          f"{torch.__version__}, CUDA {torch.version.cuda}", flush=True)

    def left() -> float:
        return args.time_limit - (time.perf_counter() - start)

    runners: dict[str, Callable[[], dict]] = {
        "cli": lambda: phase_cli(s, device, args.train_arg, max(60.0, left()),
                                 Path(args.keep_run) if args.keep_run else None),
        "train_p": lambda: phase_train_p(s, device),
        "memory": lambda: phase_memory(s, device),
        "sample": lambda: phase_sample(s, device),
        "compile": lambda: run_child_phase(args, "compile", max(1.0, left())),
    }
    for name in PHASES:
        if name not in wanted:
            report["phases"][name] = {"status": "skipped", "reason": "not in --phases"}
        elif left() <= 0:
            report["phases"][name] = {
                "status": "skipped",
                "reason": f"time limit {args.time_limit:g} s reached before this phase"}
        else:
            print(f"[{time.perf_counter() - start:6.1f} s] {name} …", flush=True)
            report["phases"][name] = guarded(runners[name])  # a runner's own status wins
    report["total_wall_s"] = round(time.perf_counter() - start, 2)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    print()
    try:
        print(common.table(["phase", "figure", "value", "unit / note"], rows(report)))
    except Exception as exc:  # the JSON is written; a table bug must not change the exit code
        print(f"(no table: {error_text(exc)})")
    print(f"\ntotal {report['total_wall_s']:.1f} s; written to {out}")
    cli = report["phases"]["cli"]
    return 1 if cli.get("status") == "error" else 0


if __name__ == "__main__":
    sys.exit(main())
