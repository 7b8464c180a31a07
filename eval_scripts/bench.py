"""Side-by-side benchmark: hear_gura against a naive GURA-style reference, in one run.

    python eval_scripts/bench.py [--device cpu|cuda] [--json FILE] [--layers N] [--cases a,b,c,d,grid]

Real-size architectures (HuBERT-xlarge, wav2vec 2.0 large configs) with RANDOM
weights (timing and memory do not depend on the values), CREPE full with its
real weights. ``--layers N`` cuts the transformer depth of both SSL models for
quick runs (every figure says which depth it used); case (c) uses
``--c-layers`` (default 2) at full width, since the memory behaviour of windowing
is per layer.

The naive reference is the straightforward way the GURA code works: whole clip
at once through transformers' forward with ``output_hidden_states=True`` (all
hidden states alive, then averaged), ``torchcrepe.embed`` one clip at a time,
then the same alignment and fusion. It uses transformers' default attention
(SDPA), like GURA's code would on today's transformers.

Cases: (a) a batch of 16 x 4 s clips, (b) 1 x 60 s, (c) 1 x 10 min, (d) CREPE on
84 x 1 s (heareval's Speech Commands batch); "grid" = the cost of 4 fusion/layer
variants from one shared member pass relative to one variant; "flops" = the SSL
members' FLOP/s on (a) against the measured matmul peak; "precision" = per
member, bf16 and fp16 autocast against fp32 (cosine, max abs diff, speed-up). Each measurement
runs in its own process so peak memory (RSS on CPU, max allocated on GPU) is
its own. Cases (a)-(d) compare hear_gura's embeddings with the reference's:
max abs diff, the reference's largest value (``max_abs_value``: the scale of
that difference) and the minimum cosine over frames; ``--repeat-naive`` runs the
reference twice, so a difference can be told from the device's own run-to-run
spread (``naive_repeat_*``). ``--json`` writes every figure under a stable key.

If hear_gura's own side fails on any case (an exception, out of memory, a
crash), no speed-up is computed for that case, ``--json`` is not written (the
figures already in that file stay as they were) and the script exits with
status 1 naming the failures. The naive side may fail or time out (case (c) is
meant to): that is recorded as its error, with no speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HXL = "facebook/hubert-xlarge-ll60k"
W = "facebook/wav2vec2-large-960h-lv60-self"
CASES = {"a": (16, 4.0), "b": (1, 60.0), "c": (1, 600.0), "d": (84, 1.0)}
KEYS = {"a": "batch16x4s", "b": "clip60s", "c": "clip600s", "d": "batch84x1s"}


# ----------------------------------------------------------------- checkpoints
def write_checkpoints(folder: Path, layers: int | None, ids: tuple = ()) -> Path:
    """Real-size random checkpoints (depth cut to ``layers``) and their manifest; cached.

    ``ids``: the checkpoint ids to write (default H-xl and W).
    """
    import torch
    import transformers

    from hear_gura.specs import CONV_KERNEL, CONV_STRIDE, checkpoint_spec

    manifest = folder / "checkpoints.json"
    if manifest.exists():
        return manifest
    folder.mkdir(parents=True, exist_ok=True)
    entries = {"_random_weights": True}
    for index, checkpoint_id in enumerate(ids or (HXL, W)):
        spec = checkpoint_spec(checkpoint_id)
        config_class = transformers.HubertConfig if spec.model_type == "hubert" else transformers.Wav2Vec2Config
        config = config_class(
            hidden_size=spec.hidden_size, num_hidden_layers=layers or spec.num_layers,
            num_attention_heads=16, intermediate_size=4 * spec.hidden_size, conv_dim=(512,) * 7,
            conv_kernel=CONV_KERNEL, conv_stride=CONV_STRIDE, conv_bias=True, feat_extract_norm="layer",
            do_stable_layer_norm=True, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
        )
        config.hear_gura_random_fixture = True
        torch.manual_seed(index)
        model_class = transformers.HubertModel if spec.model_type == "hubert" else transformers.Wav2Vec2Model
        target = folder / checkpoint_id.replace("/", "--")
        model_class(config).save_pretrained(target)
        entries[checkpoint_id] = target.name
    manifest.write_text(json.dumps(entries, indent=2))
    return manifest


# ------------------------------------------------------------------ reference
class NaiveReference:
    """GURA's way: whole clips, all hidden states alive, per-clip torchcrepe."""

    def __init__(self, ensemble: str, manifest: Path, device: str) -> None:
        import transformers

        from hear_gura.registry import load_ensemble

        self.config = load_ensemble(ensemble)
        entries = json.loads(manifest.read_text())
        self.device = device
        self.models = {}
        for member in self.config.members:
            if member.type == "hf":
                cls = transformers.HubertModel if "hubert" in member.params["checkpoint"] else transformers.Wav2Vec2Model
                path = manifest.parent / entries[member.params["checkpoint"]]
                self.models[member.name] = cls.from_pretrained(path).eval().to(device)

    def __call__(self, audio):
        import torch
        import torch.nn.functional as F

        layers = self.config.layers
        with torch.no_grad():
            ssl = {}
            for name, model in self.models.items():
                out = model(audio, output_hidden_states=True)
                states = list(out.hidden_states[:-1]) + [out.last_hidden_state]
                ssl[name] = torch.stack(states).mean(dim=0) if layers == "mean" else out.last_hidden_state
            # GURA's fusions bring every member to wav2vec 2.0's width; a lone SSL member keeps its own
            width = ssl["wav2vec2"].shape[-1] if "wav2vec2" in ssl else (
                next(iter(ssl.values())).shape[-1] if ssl else 1024)
            frames = next(iter(ssl.values())).shape[1] if ssl else None
            outs = []
            for member in self.config.members:
                if member.type == "crepe":
                    import torchcrepe  # only ensembles with a CREPE member need it

                    clips = [torchcrepe.embed(audio[i : i + 1], 16000, hop_length=800, model="full", pad=True,
                                              batch_size=512, device=self.device) for i in range(audio.shape[0])]
                    c = torch.cat([x.reshape(1, x.shape[1], -1) for x in clips])
                    if frames is None:
                        return c
                    c = F.interpolate(c, size=width, mode="linear")
                    outs.append(F.interpolate(c.transpose(1, 2), size=frames, mode="linear").transpose(1, 2))
                else:
                    x = ssl[member.name]
                    outs.append(F.interpolate(x, size=width, mode="linear") if x.shape[-1] != width else x)
            if self.config.fusion == "avg":
                return torch.stack(outs).mean(dim=0)
            return torch.stack(outs, dim=-1).flatten(start_dim=-2)


# ---------------------------------------------------------------------- worker
def peak_memory_mb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args: argparse.Namespace) -> None:
    """One measurement in this process; prints one JSON line."""
    import torch

    from hear_gura.api import load_ensemble_model

    torch.manual_seed(0)
    if args.conv_tf32 == "off":  # cuDNN convolutions in full fp32 (PyTorch lets them use TF32 by default)
        torch.backends.cudnn.allow_tf32 = False
    batch, seconds = CASES[args.case]
    audio = (torch.rand(batch, int(seconds * 16000)) * 2 - 1).to(args.device)
    manifest = Path(args.manifest) if args.manifest else None
    if args.impl == "naive":
        model = NaiveReference(args.ensemble, manifest, args.device)
        run = lambda: model(audio)  # noqa: E731
    else:
        model = load_ensemble_model(args.ensemble, str(manifest or ""), **json.loads(args.options)).to(args.device)
        run = lambda: model.timestamp_embeddings(audio)[0]  # noqa: E731
    if args.device.startswith("cuda"):
        run()  # warm-up (kernels, allocator)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    baseline = peak_memory_mb(args.device) if not args.device.startswith("cuda") else torch.cuda.memory_allocated() / 2**20
    start = time.perf_counter()
    try:
        out = run()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds_taken = time.perf_counter() - start
        error = None
    except (RuntimeError, MemoryError) as err:  # e.g. out of memory: a failed run has no time
        out, seconds_taken, error = None, None, (str(err).splitlines() or [type(err).__name__])[0][:200]
    result = {"seconds": seconds_taken, "peak_mb": peak_memory_mb(args.device), "baseline_mb": baseline,
              "audio_seconds": batch * seconds, "error": error}
    if out is not None and args.save:
        torch.save(out.cpu(), args.save)
    print("RESULT " + json.dumps(result), flush=True)


def run_worker(device: str, impl: str, ensemble: str, case: str, manifest: Path | None, options: dict,
               save: Path | None = None, timeout: float | None = None, conv_tf32: str = "default") -> dict:
    """One measurement in a fresh process (``conv_tf32``: its ``--conv-tf32``). Past ``timeout`` seconds the
    process is killed and the result says so, with the peak RSS it had reached (CPU)."""
    command = [sys.executable, __file__, "--worker", "--device", device, "--impl", impl, "--ensemble", ensemble,
               "--case", case, "--options", json.dumps(options), "--conv-tf32", conv_tf32]
    if manifest:
        command += ["--manifest", str(manifest)]
    if save:
        command += ["--save", str(save)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start, peak_mb = time.perf_counter(), 0.0
    while process.poll() is None:
        peak_mb = max(peak_mb, _vm_hwm_mb(process.pid))
        if timeout and time.perf_counter() - start > timeout:
            process.kill()
            process.communicate()
            return {"error": f"timed out after {timeout:.0f} s (killed); peak RSS so far {peak_mb:.0f} MB",
                    "seconds": None, "peak_mb": peak_mb or None, "timed_out": True}
        time.sleep(0.5)
    stdout, stderr = process.communicate()
    lines = [l for l in stdout.splitlines() if l.startswith("RESULT ")]
    if not lines:
        return {"error": (stderr.strip().splitlines() or ["killed"])[-1][:300], "seconds": None, "peak_mb": None}
    return json.loads(lines[-1][7:])


def side_failed(result: dict | None) -> bool:
    """Whether one side's measurement failed: it raised, crashed, was killed or has no time."""
    return result is not None and (bool(result.get("error")) or not result.get("seconds"))


def _vm_hwm_mb(pid: int) -> float:
    """Peak resident set size of a live process (Linux ``VmHWM``), in MB; 0 where unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


# ------------------------------------------------------------------- measures
def dtype_suffix(dtype: str) -> str:
    """The dtype part of a figure's key: none for float32 (the keys of every earlier run), else ``.<dtype>``."""
    return "" if dtype == "float32" else f".{dtype}"


def timed(function, device: str):
    """``(function(), wall seconds)``, the GPU synchronised before and after (its work is asynchronous)."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = function()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def matmul_peak_gflops(device: str, dtype: str = "float32", size: int = 2048) -> float:
    """The best of 5 timings of 4 ``size``-cubed matrix products in ``dtype``, in GFLOP/s."""
    import torch

    a = torch.randn(size, size, device=device).to(getattr(torch, dtype))
    b = torch.randn(size, size, device=device).to(getattr(torch, dtype))
    a @ b  # warm-up (kernel choice, clocks)
    best = 0.0
    for _ in range(5):
        _, seconds = timed(lambda: [a @ b for _ in range(4)], device)
        best = max(best, 4 * 2 * size**3 / seconds / 1e9)
    return best


def ssl_flops_per_second(manifest: Path, device: str, dtype: str = "float32", batch: int = 16,
                         seconds: float = 4.0) -> dict:
    """FLOPs of the SSL members on ``batch`` x ``seconds`` clips (default: case (a)), counted by torch, over their
    measured time (the best of 3 on a GPU, whose single runs of a fraction of a second vary); ``dtype``: the
    model's."""
    import warnings

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from hear_gura.api import load_ensemble_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the CPU low-precision warning: we know
        model = load_ensemble_model("fusion_cat", str(manifest), members=["hubert", "wav2vec2"],
                                    dtype=dtype).to(device)
    audio = torch.rand(batch, int(seconds * 16000), device=device) * 2 - 1
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.timestamp_embeddings(audio[:1])
    flops = counter.get_total_flops() * batch
    model.timestamp_embeddings(audio[:2])  # warm-up
    repeats = 3 if device.startswith("cuda") else 1
    taken = min(timed(lambda: model.timestamp_embeddings(audio), device)[1] for _ in range(repeats))
    return {"gflops": flops / 1e9, "seconds": taken, "gflop_per_s": flops / taken / 1e9}


def precision_fidelity(manifest: Path, device: str, seconds: float,
                       members: tuple[str, ...] = ("hubert", "wav2vec2", "crepe")) -> dict:
    """Per member of fusion_cat: bf16 / fp16 autocast against fp32 (cosine, max abs diff, speed-up)."""
    import warnings

    import torch

    from hear_gura.api import load_ensemble_model

    audio = (torch.rand(1, int(seconds * 16000), generator=torch.Generator().manual_seed(0)) * 2 - 1).to(device)
    figures = {}
    for member in members:
        outputs, times = {}, {}
        for dtype in ("float32", "bfloat16", "float16"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the CPU warning: we know
                model = load_ensemble_model("fusion_cat", str(manifest), members=[member], grid=member,
                                            dtype=dtype).to(device)
                model.timestamp_embeddings(audio)  # warm-up
                (outputs[dtype], _), times[dtype] = timed(lambda: model.timestamp_embeddings(audio), device)
        for dtype in ("bfloat16", "float16"):
            cosine = torch.nn.functional.cosine_similarity(outputs[dtype], outputs["float32"], dim=-1)
            figures[f"precision.{member}.{dtype}"] = {
                "cosine_min": cosine.min().item(), "cosine_mean": cosine.mean().item(),
                "max_abs_diff": (outputs[dtype] - outputs["float32"]).abs().max().item(),
                "speedup": times["float32"] / times[dtype], "seconds": times[dtype],
            }
    return figures


def grid_cost(manifest: Path, device: str) -> dict:
    """4 variants (fusion avg/cat x layers last/mean) from one shared pass, against one variant."""
    import torch

    from hear_gura.api import load_ensemble_model
    from hear_gura.manifest import Manifest
    from hear_gura.shared import StudyPass

    model = load_ensemble_model("fusion_cat", str(manifest)).to(device)
    audio = torch.rand(4, 64000, device=device) * 2 - 1
    variants = [{"fusion": f, "layers": l} for f in ("avg", "cat_interleave") for l in ("last", "mean")]
    shared = StudyPass.of_variants([("fusion_cat", v) for v in variants], Manifest.load(str(manifest))).to(device)
    model.timestamp_embeddings(audio[:1])  # warm-up

    def best_of(function, repeats: int = 2) -> float:
        return min(timed(lambda: function(audio), device)[1] for _ in range(repeats))

    one = best_of(model.timestamp_embeddings)
    four = best_of(shared.timestamp_embeddings)
    return {"one_variant_s": one, "four_variants_s": four, "cost_ratio": four / one}


def output_fidelity(ours: "torch.Tensor", naive: "torch.Tensor") -> dict:
    """hear_gura's embeddings against the naive reference's, ``(..., width)`` each: ``max_abs_diff``, and the
    scale it is measured on (``max_abs_value``: the reference's largest value; random weights over 48 layers
    give large ones) with ``cosine_min`` over the rows (frames); all None when the shapes differ."""
    import torch

    if ours.shape != naive.shape:
        return {"max_abs_diff": None, "max_abs_value": None, "cosine_min": None}
    cosine = torch.nn.functional.cosine_similarity(ours.double(), naive.double(), dim=-1)
    return {"max_abs_diff": (ours - naive).abs().max().item(), "max_abs_value": naive.abs().max().item(),
            "cosine_min": cosine.min().item()}


# ------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="write every figure to this file")
    parser.add_argument("--layers", type=int, help="cut SSL depth to N layers (default: full depth)")
    parser.add_argument("--c-layers", type=int, default=2, help="SSL depth for case (c) (default 2)")
    parser.add_argument("--precision-seconds", type=float,
                        help="clip length for the precision case (default 4 s on GPU, 0.5 s on CPU, where "
                             "bf16/fp16 run emulated and slow)")
    parser.add_argument("--update", action="store_true",
                        help="merge into the --json file: keep its figures, replace those measured now")
    parser.add_argument("--impls", default="hear_gura,naive",
                        help="which sides to run for cases a-d (default both; e.g. hear_gura to re-measure ours)")
    parser.add_argument("--naive-timeout", type=float, default=600,
                        help="kill the naive reference of case (c) after this many seconds and report the "
                             "peak RSS it had reached (default 600)")
    parser.add_argument("--cases", default="a,b,c,d,grid,flops,precision", help="comma-separated subset")
    parser.add_argument("--flops-dtypes", default="float32",
                        help="model dtypes of the flops case, each against the matmul peak in that dtype "
                             "(default float32; on a GPU: float32,bfloat16)")
    parser.add_argument("--flops-shapes", default="16x4",
                        help="BATCHxSECONDS clip shapes of the flops case (default 16x4, case (a)); figures of "
                             "other shapes go under ssl.<B>x<S>s")
    parser.add_argument("--precision-members", default="hubert,wav2vec2,crepe",
                        help="fusion_cat members of the precision case (default all three)")
    parser.add_argument("--repeat-naive", action="store_true",
                        help="cases a-d: run the naive reference twice and report how far the two runs differ "
                             "(naive_repeat_max_abs_diff: the device's run-to-run spread, beside ours vs naive)")
    parser.add_argument("--conv-tf32", choices=("default", "off"), default="default",
                        help="cases a-d on a GPU: 'off' runs cuDNN convolutions in full fp32 (PyTorch's default "
                             "lets them use TF32; matmuls are fp32 either way)")
    parser.add_argument("--ensembles", default="fusion_cat,cat,crepe")
    parser.add_argument("--checkpoints", default="bench_checkpoints", help="cache folder for random checkpoints")
    # worker mode
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    parser.add_argument("--ensemble", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--manifest", help=argparse.SUPPRESS)
    parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    import torch

    cases = args.cases.split(",")
    figures: dict = json.loads(Path(args.json).read_text()) if args.update and Path(args.json).exists() else {}
    figures |= {"device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(),
                     "ssl_layers": args.layers or "full", "c_layers": args.c_layers,
                     "weights": "random (real-size architectures; CREPE real)", "conv_tf32": args.conv_tf32}
    if args.device.startswith("cuda"):
        figures["device_name"] = torch.cuda.get_device_name(torch.device(args.device))
    root = Path(args.checkpoints)
    manifest = write_checkpoints(root / f"layers-{args.layers or 'full'}", args.layers)
    figures["loadavg_start"] = list(os.getloadavg())  # 1, 5, 15 min: other work on the machine skews every time
    peaks: dict[str, float] = {}  # the denominators of the flops case, per dtype
    if "flops" in cases:
        size = 8192 if args.device.startswith("cuda") else 2048  # a GPU needs big products to reach its peak
        for dtype in args.flops_dtypes.split(","):
            peaks[dtype] = matmul_peak_gflops(args.device, dtype, size)
            figures["matmul_peak_gflops" + dtype_suffix(dtype)] = peaks[dtype]
            print(f"matmul peak ({size}^3 {dtype}): {peaks[dtype]:.1f} GFLOP/s", flush=True)
        figures["matmul_peak_size"] = size
    print(f"SSL depth: {args.layers or 'full'}; load average {figures['loadavg_start'][0]:.2f}", flush=True)
    tmp = root / "outputs"
    tmp.mkdir(parents=True, exist_ok=True)
    impls = args.impls.split(",")
    failures: list[str] = []  # hear_gura's own side failed: no speed-up, no --json, exit 1
    for ensemble in args.ensembles.split(","):
        for case in [c for c in "abcd" if c in cases]:
            if case == "d" and ensemble != "crepe":
                continue
            case_manifest = manifest
            if case == "c" and ensemble != "crepe":
                case_manifest = write_checkpoints(root / f"layers-{args.c_layers}", args.c_layers)
            key = f"{ensemble}.{KEYS[case]}"
            results = {}  # per side that runs now: "ours" (hear_gura) and/or "naive"
            if "hear_gura" in impls:
                results["ours"] = run_worker(args.device, "hear_gura", ensemble, case, case_manifest, {},
                                             tmp / "ours.pt", conv_tf32=args.conv_tf32)
            if "naive" in impls:
                results["naive"] = run_worker(args.device, "naive", ensemble, case, case_manifest, {},
                                              tmp / "naive.pt", timeout=args.naive_timeout if case == "c" else None,
                                              conv_tf32=args.conv_tf32)
            entry = {"depth": args.c_layers if case == "c" else (args.layers or "full")}
            for side, result in results.items():
                entry |= {f"{side}_s": result["seconds"], f"{side}_peak_mb": result["peak_mb"],
                          f"{side}_baseline_mb": result.get("baseline_mb"), f"{side}_error": result.get("error")}
            ours, naive = results.get("ours"), results.get("naive")
            if side_failed(ours):
                failures.append(f"{key}: {ours.get('error') or 'no time measured'}")
                for name in ("audio_s_per_s", "speedup", "max_abs_diff", "max_abs_value", "cosine_min",
                             "mixed_runs"):
                    figures.pop(f"{key}.{name}", None)  # nothing computed from a failed run survives
            elif ours:
                entry["audio_s_per_s"] = ours["audio_seconds"] / ours["seconds"]
                if naive and not side_failed(naive):
                    entry["speedup"] = naive["seconds"] / ours["seconds"]
                    a, b = torch.load(tmp / "ours.pt"), torch.load(tmp / "naive.pt")
                    entry |= output_fidelity(a, b)
                    if args.repeat_naive:  # the same code twice: the device's own run-to-run spread
                        again = run_worker(args.device, "naive", ensemble, case, case_manifest, {}, tmp / "naive2.pt",
                                           conv_tf32=args.conv_tf32)
                        if not side_failed(again):
                            repeat = output_fidelity(torch.load(tmp / "naive2.pt"), b)
                            entry |= {f"naive_repeat_{k}": v for k, v in repeat.items() if k != "max_abs_value"}
            for name, value in entry.items():
                figures[f"{key}.{name}"] = value
            if (len(results) == 1 and not side_failed(ours) and figures.get(f"{key}.ours_s")
                    and figures.get(f"{key}.naive_s") and not figures.get(f"{key}.naive_error")):
                # one side re-measured (--update): the ratio mixes two runs, and says so
                figures[f"{key}.speedup"] = figures[f"{key}.naive_s"] / figures[f"{key}.ours_s"]
                figures[f"{key}.mixed_runs"] = True
            print(f"{key}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in entry.items() if v is not None), flush=True)
    for ensemble in args.ensembles.split(","):  # the memory targets, as ratios
        if any(f.startswith(f"{ensemble}.") for f in failures):
            continue
        b, c = figures.get(f"{ensemble}.clip60s.ours_peak_mb"), figures.get(f"{ensemble}.clip600s.ours_peak_mb")
        naive_b = figures.get(f"{ensemble}.clip60s.naive_peak_mb")
        if b and naive_b:
            figures[f"{ensemble}.clip60s.peak_reduction"] = 1 - b / naive_b
            print(f"{ensemble}: peak RSS on (b) {100 * (1 - b / naive_b):.0f}% below the naive reference", flush=True)
        if b and c:
            figures[f"{ensemble}.clip600s.peak_vs_clip60s"] = c / b
            print(f"{ensemble}: peak RSS on (c) = {c / b:.2f}x that on (b)", flush=True)
    for shape in args.flops_shapes.split(",") if peaks else ():
        batch, seconds = shape.split("x")
        name = "batch16x4s" if shape == "16x4" else f"{batch}x{seconds}s"
        for dtype, peak in peaks.items():
            measured = ssl_flops_per_second(manifest, args.device, dtype, int(batch), float(seconds))
            measured["fraction_of_peak"] = measured["gflop_per_s"] / peak
            prefix = f"ssl.{name}" + dtype_suffix(dtype)
            for key, value in measured.items():
                figures[f"{prefix}.{key}"] = value
            print(f"SSL members on {batch} x {seconds} s in {dtype}: {measured['gflop_per_s']:.1f} GFLOP/s = "
                  f"{100 * measured['fraction_of_peak']:.0f}% of the {dtype} matmul peak", flush=True)
    if "precision" in cases:
        seconds = args.precision_seconds or (4.0 if args.device.startswith("cuda") else 0.5)
        figures["precision_seconds"] = seconds
        members = tuple(args.precision_members.split(","))
        for key, entry in precision_fidelity(manifest, args.device, seconds, members).items():
            for name, value in entry.items():
                figures[f"{key}.{name}"] = value
            print(f"{key} ({seconds:g} s clip): cosine min {entry['cosine_min']:.5f}, max abs diff "
                  f"{entry['max_abs_diff']:.3g}, speed-up {entry['speedup']:.2f}x", flush=True)
    if "grid" in cases:
        measured = grid_cost(manifest, args.device)
        for name, value in measured.items():
            figures[f"grid4.{name}"] = value
        print(f"grid of 4 variants: {measured['cost_ratio']:.2f}x one variant", flush=True)
    figures["loadavg_end"] = list(os.getloadavg())
    if failures:
        sys.exit("bench: hear_gura failed, so no speed-up is reported" + (f" and {args.json} was not written"
                 if args.json else "") + ":\n  " + "\n  ".join(failures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
