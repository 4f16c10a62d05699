"""GPU throughput of EfficientNetB0 at 224 px under Keras 3 (issue 11, part 3).

Standalone: needs only keras, numpy and pillow beside the backend (torch, jax or tensorflow), so it runs on
a GPU machine whose image has no TensorFlow. Each group of variants runs in its own subprocess, because
Keras fixes its backend at import. Inside one subprocess the variants are built once, warmed up (compile
and autotuning excluded from the timings), then timed in interleaved repeats; the medians are reported.

Measured, per group:
  forward   `predict_on_batch` on a device-resident float batch (random uint8 cast on the device), i.e. the
            bare model; float32, mixed_float16, mixed_bfloat16; eager vs compiled (torch.compile / XLA).
  pipeline  the same model fed from host memory: JPEGs encoded once in memory, then decoded + resized with
            PIL in a thread pool (one thread per core) two batches ahead of the model, fed as uint8 batches.
            Also: decoding alone, and the model fed pre-decoded uint8 host batches (transfer + forward).
  finetune  the whole backbone trainable + Dense(10) head (float32 output), Adam, sparse categorical
            cross-entropy from logits, `train_on_batch` at batch 64.

    python bench/gpu_keras.py --out DIR                      # GPU: torch-eager, jax-xla, torch-compile
    python bench/gpu_keras.py --out DIR --smoke --groups tf-eager,tf-xla   # CPU smoke test, tiny sizes

Writes DIR/gpu.json (every number) and DIR/gpu.jsonl (one line per measurement, as they come).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

F32, F16, BF16 = "float32", "mixed_float16", "mixed_bfloat16"
CL, CF = "channels_last", "channels_first"

# Each group: a backend and its variants. A forward variant is (policy, data format, jit_compile).
GROUPS = {
    "torch-eager": dict(
        backend="torch",
        forward=[(F32, CL, False), (F16, CL, False), (BF16, CL, False), (F32, CF, False), (F16, CF, False)],
        small_batch=[(F32, CL, False), (F16, CL, False)],
        pipeline=[(F32, CL, False), (F16, CL, False)],
        finetune=[(F32, False), (F16, False), (BF16, False)],
        cap_s=110,
    ),
    "jax-xla": dict(
        backend="jax",
        forward=[(F32, CL, True), (F16, CL, True), (BF16, CL, True)],
        small_batch=[(F32, CL, True), (F16, CL, True)],
        finetune=[(F32, True), (F16, True)],
        pipeline=[(F16, CL, True)],
        cap_s=150,
    ),
    "torch-compile": dict(
        backend="torch",
        forward=[(F32, CL, False), (F32, CL, True), (F16, CL, True)],
        small_batch=[],
        finetune=[(F16, True)],
        pipeline=[],
        cap_s=400,
    ),
    # A second run's leftovers (the first run's time ran out there): JAX fine-tuning and pipeline, torch.compile
    # fine-tuning beside its eager reference.
    "jax-ft": dict(
        backend="jax", forward=[], small_batch=[], finetune=[(F32, True), (F16, True)], pipeline=[(F16, CL, True)],
        cap_s=170,
    ),
    "jax-pipe": dict(backend="jax", forward=[], small_batch=[], finetune=[], pipeline=[(F16, CL, True)], cap_s=100),
    "torch-compile-ft": dict(
        backend="torch", forward=[], small_batch=[], finetune=[(F16, False), (F16, True)], pipeline=[], cap_s=400,
    ),
    # For a machine with TensorFlow (and the CPU smoke test): eager tf.function vs XLA.
    "tf-eager": dict(
        backend="tensorflow",
        forward=[(F32, CL, False), (F16, CL, False), (BF16, CL, False)],
        small_batch=[(F32, CL, False)],
        pipeline=[(F32, CL, False)],
        finetune=[(F32, False), (F16, False)],
        cap_s=300,
    ),
    "tf-xla": dict(
        backend="tensorflow",
        forward=[(F32, CL, False), (F32, CL, True), (F16, CL, True)],
        small_batch=[],
        pipeline=[],
        finetune=[(F16, True)],
        cap_s=300,
    ),
}

FULL = dict(size=224, batch=256, small_batch=64, images_per_repeat=1024, repeats=5, warmup=3,
            pipeline_images=2048, source_px=256, pipeline_repeats=3, ft_batch=64, ft_steps=5, ft_repeats=5)
SMOKE = dict(size=32, batch=4, small_batch=2, images_per_repeat=8, repeats=2, warmup=1,
             pipeline_images=16, source_px=40, pipeline_repeats=1, ft_batch=2, ft_steps=2, ft_repeats=1)


def label(policy: str, fmt: str, jit: bool, backend: str) -> str:
    mode = ("XLA" if backend in ("jax", "tensorflow") else "torch.compile") if jit or backend == "jax" else "eager"
    return f"{policy}{'/NCHW' if fmt == CF else ''} {mode}"


# ----------------------------------------------------------------------------------------------- host data
def make_jpegs(count: int, px: int, seed: int = 0) -> list[bytes]:
    """Random-ish photos: a smooth random field (low-res noise upsampled) plus grain, JPEG quality 90."""
    import numpy as np
    from PIL import Image

    def one(i: int) -> bytes:
        rng = np.random.default_rng(seed + i)
        low = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((px, px), Image.BICUBIC)
        pixels = np.asarray(low, dtype=np.int16) + rng.normal(0, 8, (px, px, 3)).astype(np.int16)
        buffer = io.BytesIO()
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
        return buffer.getvalue()

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        return list(pool.map(one, range(count)))


def decode(data: bytes, size: int):
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR))


def host_batches(pool: ThreadPoolExecutor, jpegs: list[bytes], batch: int, size: int, ahead: int = 2):
    """uint8 (batch, size, size, 3) arrays, decoded by the pool `ahead` batches before they are asked for."""
    import numpy as np

    chunks = iter([jpegs[i:i + batch] for i in range(0, len(jpegs), batch)])
    pending: deque = deque()

    def submit() -> None:
        chunk = next(chunks, None)
        if chunk is not None:
            pending.append([pool.submit(decode, data, size) for data in chunk])

    for _ in range(ahead):
        submit()
    while pending:
        futures = pending.popleft()
        submit()
        yield np.stack([future.result() for future in futures])


# ------------------------------------------------------------------------------------------------- worker
class Worker:
    def __init__(self, group: str, cfg: dict, jsonl: Path, deadline: float, jpeg_file: Path | None):
        self.group, self.cfg, self.jsonl, self.deadline = group, cfg, jsonl, deadline
        self.spec = GROUPS[group]
        self.backend = self.spec["backend"]
        self.jpeg_file = jpeg_file
        import keras
        import numpy as np

        self.keras, self.np = keras, np
        self.rng = np.random.default_rng(0)

    # -- bookkeeping
    def emit(self, **record) -> None:
        record = {"group": self.group, "backend": self.backend, **record}
        print("RESULT", json.dumps(record), flush=True)
        with open(self.jsonl, "a") as out:
            out.write(json.dumps(record) + "\n")

    def time_left(self) -> float:
        return self.deadline - time.time()

    def guarded(self, section: str, name: str, fn, *args):
        """Run one variant's step; on failure print and record the error and carry on with the others."""
        if self.time_left() < 5:
            print(f"SKIP {section} {name}: out of time", flush=True)
            self.emit(section=section, variant=name, error="skipped: the group's time ran out")
            return None
        try:
            return fn(*args)
        except Exception as exc:  # one failing variant must not stop the others
            traceback.print_exc()
            self.emit(section=section, variant=name, error=f"{type(exc).__name__}: {exc}"[:600])
            return None

    # -- models
    def backbone(self, policy: str, fmt: str, size: int):
        keras = self.keras
        keras.config.set_image_data_format(fmt)
        keras.mixed_precision.set_global_policy(policy)
        try:
            shape = (3, size, size) if fmt == CF else (size, size, 3)
            return keras.applications.EfficientNetB0(weights=None, include_top=False, pooling="avg",
                                                     input_shape=shape)
        finally:
            keras.mixed_precision.set_global_policy(F32)
            keras.config.set_image_data_format(CL)

    def device_batch(self, batch: int, size: int, fmt: str):
        ops = self.keras.ops
        pixels = self.rng.integers(0, 256, (batch, size, size, 3), dtype=self.np.uint8)
        x = ops.cast(ops.convert_to_tensor(pixels), "float32")  # uint8 -> float on the device
        return ops.transpose(x, (0, 3, 1, 2)) if fmt == CF else x

    def interleave(self, timers: dict, repeats: int) -> dict:
        """timers: name -> function returning seconds of one timed repeat. Round-robin, medians."""
        seconds = {name: [] for name in timers}
        for _ in range(repeats):
            for name, fn in list(timers.items()):
                if name in seconds and self.time_left() > 0:
                    try:
                        seconds[name].append(fn())
                    except Exception as exc:
                        traceback.print_exc()
                        self.emit(section="timing", variant=name, error=f"{type(exc).__name__}: {exc}"[:600])
                        seconds.pop(name)
        return seconds

    # -- sections
    def forward(self) -> None:
        cfg, spec = self.cfg, self.spec
        size, per_repeat = cfg["size"], cfg["images_per_repeat"]
        models, inputs, timers, warm = {}, {}, {}, {}
        cases = [(v, cfg["batch"]) for v in spec["forward"]] + [(v, cfg["small_batch"]) for v in spec["small_batch"]]

        def prepare(variant, batch):
            policy, fmt, jit = variant
            if variant not in models:
                model = self.backbone(policy, fmt, size)
                model.compile(jit_compile=jit)
                models[variant] = model
            model = models[variant]
            if (fmt, batch) not in inputs:
                inputs[fmt, batch] = self.device_batch(batch, size, fmt)
            x = inputs[fmt, batch]
            started = time.perf_counter()
            out = model.predict_on_batch(x)
            first = time.perf_counter() - started
            assert out.shape == (batch, 1280), out.shape
            for _ in range(cfg["warmup"] - 1):
                model.predict_on_batch(x)
            calls = max(2, -(-per_repeat // batch))

            def timer():
                started = time.perf_counter()
                for _ in range(calls):
                    model.predict_on_batch(x)  # returns numpy: waits for the device each call
                return time.perf_counter() - started

            key = (variant, batch)
            timers[key], warm[key] = timer, (first, calls, str(out.dtype))
            print(f"warm {label(*variant, self.backend)} b{batch}: first call {first:.1f}s", flush=True)

        for variant, batch in cases:
            self.guarded("forward", f"{label(*variant, self.backend)} b{batch}", prepare, variant, batch)
        seconds = self.interleave(timers, cfg["repeats"])
        for (variant, batch), times in seconds.items():
            if not times:
                continue
            first, calls, out_dtype = warm[variant, batch]
            policy, fmt, jit = variant
            rates = [calls * batch / t for t in times]
            self.emit(section="forward", variant=label(*variant, self.backend), policy=policy, format=fmt,
                      jit=jit or self.backend == "jax", batch=batch, images_per_s=statistics.median(rates),
                      rates=rates, first_call_s=first, output_dtype=out_dtype)
        self.models = models

    def pipeline(self) -> None:
        if not self.spec["pipeline"]:
            return
        cfg = self.cfg
        size, batch = cfg["size"], cfg["batch"]
        with open(self.jpeg_file, "rb") as f:
            jpegs = pickle.load(f)
        threads = os.cpu_count()
        pool = ThreadPoolExecutor(threads)
        decoded = []

        def decode_only():
            started = time.perf_counter()
            decoded[:] = list(host_batches(pool, jpegs, batch, size))
            return time.perf_counter() - started

        decode_only()  # warm the pool
        rates = [len(jpegs) / decode_only() for _ in range(cfg["pipeline_repeats"])]
        self.emit(section="decode_only", variant=f"PIL decode+resize {cfg['source_px']}->{size}, {threads} threads",
                  threads=threads, images=len(jpegs), images_per_s=statistics.median(rates), rates=rates)

        for variant in self.spec["pipeline"]:
            name = label(*variant, self.backend)
            model = getattr(self, "models", {}).get(variant)

            def run(model=model, variant=variant, name=name):
                if model is None:
                    model = self.backbone(variant[0], variant[1], size)
                    model.compile(jit_compile=variant[2])
                started = time.perf_counter()
                model.predict_on_batch(decoded[0])  # uint8 host batch: may trace/compile once more
                first = time.perf_counter() - started
                model.predict_on_batch(decoded[-1])

                def fed():  # pre-decoded host uint8 batches: transfer + forward
                    started = time.perf_counter()
                    for x in decoded:
                        model.predict_on_batch(x)
                    return time.perf_counter() - started

                def piped():  # decode + resize in the pool, two batches ahead, then transfer + forward
                    started = time.perf_counter()
                    for x in host_batches(pool, jpegs, batch, size):
                        model.predict_on_batch(x)
                    return time.perf_counter() - started

                seconds = self.interleave({"fed": fed, "piped": piped}, cfg["pipeline_repeats"])
                for kind, times in seconds.items():
                    if not times:
                        self.emit(section="pipeline_" + kind, variant=name, error="skipped: the group's time ran out")
                        continue
                    rates = [len(jpegs) / t for t in times]
                    self.emit(section="pipeline_" + kind, variant=name, policy=variant[0], batch=batch,
                              images=len(jpegs), threads=threads, images_per_s=statistics.median(rates),
                              rates=rates, first_call_s=first)

            self.guarded("pipeline", name, run)
        pool.shutdown()

    def finetune(self) -> None:
        keras, cfg = self.keras, self.cfg
        size, batch, steps = cfg["size"], cfg["ft_batch"], cfg["ft_steps"]
        timers, warm = {}, {}
        x = self.device_batch(batch, size, CL)
        y = keras.ops.convert_to_tensor(self.rng.integers(0, 10, (batch,)).astype("int32"))

        def prepare(policy, jit):
            base = self.backbone(policy, CL, size)
            base.trainable = True
            keras.mixed_precision.set_global_policy(policy)
            try:
                inputs = keras.Input((size, size, 3))
                logits = keras.layers.Dense(10, dtype="float32")(base(inputs))  # float32 head under mixed
                model = keras.Model(inputs, logits)
            finally:
                keras.mixed_precision.set_global_policy(F32)
            model.compile(optimizer=keras.optimizers.Adam(1e-4),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit)
            started = time.perf_counter()
            loss = model.train_on_batch(x, y)  # returns a Python float: waits for the device
            first = time.perf_counter() - started
            for _ in range(cfg["warmup"] - 1):
                loss = model.train_on_batch(x, y)

            def timer():
                started = time.perf_counter()
                for _ in range(steps):
                    model.train_on_batch(x, y)
                return time.perf_counter() - started

            name = label(policy, CL, jit, self.backend)
            timers[name], warm[name] = timer, (first, float(loss), policy, type(model.optimizer).__name__)
            print(f"warm finetune {name}: first step {first:.1f}s, loss {float(loss):.3f}", flush=True)

        for policy, jit in self.spec["finetune"]:
            self.guarded("finetune", label(policy, CL, jit, self.backend), prepare, policy, jit)
        for name, times in self.interleave(timers, cfg["ft_repeats"]).items():
            if times:
                first, loss, policy, optimizer = warm[name]
                rates = [steps / t for t in times]
                step_rate = statistics.median(rates)
                self.emit(section="finetune", variant=name, policy=policy, batch=batch, steps_per_s=step_rate,
                          images_per_s=step_rate * batch, rates=rates, first_step_s=first, loss=loss,
                          optimizer=optimizer)

    def device_info(self) -> None:
        info = {"keras": self.keras.__version__}
        try:
            if self.backend == "torch":
                import torch

                info.update(torch=torch.__version__, cuda=torch.cuda.is_available(),
                            device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                            cudnn=torch.backends.cudnn.version(), cudnn_tf32=torch.backends.cudnn.allow_tf32,
                            matmul_tf32=torch.backends.cuda.matmul.allow_tf32)
            elif self.backend == "jax":
                import jax

                info.update(jax=jax.__version__, devices=[str(d) for d in jax.devices()])
            else:
                import tensorflow as tf

                info.update(tensorflow=tf.__version__, gpus=[d.name for d in tf.config.list_physical_devices("GPU")])
        except Exception as exc:
            info["error"] = repr(exc)
        self.emit(section="info", **info)

    def run(self) -> None:
        self.device_info()
        self.forward()
        if self.backend == "jax":  # the pipeline's uint8 input costs one more XLA compile: finetune first
            self.finetune()
            self.pipeline()
        else:
            self.pipeline()
            self.finetune()


# ------------------------------------------------------------------------------------------------- parent
def card() -> dict:
    try:
        text = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv"],
                              capture_output=True, text=True, timeout=30).stdout
        return {"nvidia_smi": text.strip()}
    except Exception as exc:
        return {"nvidia_smi": f"unavailable: {exc!r}"}


def table(records: list[dict]) -> str:
    forward = [r for r in records if r.get("section") == "forward" and "images_per_s" in r]

    def baseline(r):  # float32 eager at the same batch, measured in the same process if it has one
        same = [b for b in forward if b["group"] == r["group"] and b["policy"] == F32 and b["format"] == CL
                and not b["jit"] and b["batch"] == r["batch"]]
        other = [b for b in forward if b["backend"] == "torch" and b["policy"] == F32 and b["format"] == CL
                 and not b["jit"] and b["batch"] == r["batch"]]
        return (same or other or [None])[0]

    lines = ["| group | variant | batch | images/s | vs float32 eager |", "|---|---|---|---|---|"]
    for r in forward:
        base = baseline(r)
        ratio = f"{r['images_per_s'] / base['images_per_s']:.2f}x" if base else "-"
        lines.append(f"| {r['group']} | {r['variant']} | {r['batch']} | {r['images_per_s']:,.0f} | {ratio} |")
    for r in records:
        if r.get("section") in ("decode_only", "pipeline_fed", "pipeline_piped") and "images_per_s" in r:
            lines.append(f"| {r['group']} | {r['section']}: {r['variant']} | {r.get('batch', '')} | "
                         f"{r['images_per_s']:,.0f} | |")
    for r in records:
        if r.get("section") == "finetune" and "steps_per_s" in r:
            lines.append(f"| {r['group']} | finetune {r['variant']} | {r['batch']} | {r['images_per_s']:,.0f} "
                         f"({r['steps_per_s']:.2f} steps/s) | |")
    for r in records:
        if "error" in r:
            lines.append(f"| {r['group']} | {r.get('section')} {r.get('variant', '')} | | FAILED: "
                         f"{r['error'][:120]} | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    parser.add_argument("--groups", default="torch-eager,jax-xla,torch-compile")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for a CPU check of the logic")
    parser.add_argument("--budget", type=float, default=380.0, help="seconds for all groups together")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--jpegs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    cfg = SMOKE if args.smoke else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    jsonl = args.out / "gpu.jsonl"

    if args.worker:
        Worker(args.worker, cfg, jsonl, args.deadline, args.jpegs).run()
        return

    started = time.time()
    end = started + args.budget
    jsonl.write_text("")
    meta = {"config": cfg, "groups": args.groups.split(","), "command": " ".join(sys.argv), **card(),
            "host_cpus": os.cpu_count(), "python": sys.version.split()[0]}
    print(meta["nvidia_smi"], flush=True)
    t = time.perf_counter()
    jpegs = make_jpegs(cfg["pipeline_images"], cfg["source_px"])
    meta["jpeg_kib_mean"] = sum(map(len, jpegs)) / len(jpegs) / 1024
    print(f"encoded {len(jpegs)} JPEGs of {cfg['source_px']} px ({meta['jpeg_kib_mean']:.0f} KiB each) "
          f"in {time.perf_counter() - t:.1f}s", flush=True)
    jpeg_file = Path(tempfile.mkdtemp()) / "jpegs.pkl"
    jpeg_file.write_bytes(pickle.dumps(jpegs))

    exits = {}
    for group in meta["groups"]:
        left = end - time.time()
        if left < 20:
            print(f"SKIP group {group}: {left:.0f}s left of the budget", flush=True)
            exits[group] = "skipped: budget"
            continue
        soft = time.time() + min(GROUPS[group]["cap_s"], left - 10)
        env = dict(os.environ, KERAS_BACKEND=GROUPS[group]["backend"], PYTHONUNBUFFERED="1",
                   TF_CPP_MIN_LOG_LEVEL="2")
        command = [sys.executable, __file__, "--worker", group, "--deadline", str(soft), "--out", str(args.out),
                   "--jpegs", str(jpeg_file)] + (["--smoke"] if args.smoke else [])
        print(f"=== {group} (KERAS_BACKEND={env['KERAS_BACKEND']}, soft limit {soft - time.time():.0f}s)",
              flush=True)
        t = time.time()
        try:  # the hard limit: 40 s past the soft one (a compile cannot be interrupted), within the budget
            code = subprocess.run(command, env=env, timeout=max(10, min(soft + 40, end) - time.time())).returncode
        except subprocess.TimeoutExpired:
            code = "killed at its time limit"
        exits[group] = code
        print(f"=== {group}: exit {code} after {time.time() - t:.0f}s", flush=True)

    records = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    meta.update(exits=exits, total_s=time.time() - started)
    (args.out / "gpu.json").write_text(json.dumps({"meta": meta, "records": records}, indent=1))
    print("\n" + meta["nvidia_smi"].replace("\n", " / "))
    print(table(records))
    print(f"total {meta['total_s']:.0f}s; exits {exits}")


if __name__ == "__main__":
    main()
