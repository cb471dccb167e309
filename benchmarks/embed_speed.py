"""Image embedding throughput: raw forward vs ImageEncoder end to end vs a naive per-image loop.

On the same JPEG files, in one run:
  (a) raw model forward on pre-decoded, pre-resized tensors (batched, channels-last, inference mode);
  (b) skmm.ImageEncoder end to end from the files (decode, EXIF, resize, batch, forward);
  (c) a naive loop, one image per forward with autograd on, the way embetter's TimmEncoder does it.
Each is measured with glibc malloc as it is and with skmm.performance.tune_malloc(), each mode in a
fresh subprocess (the setting is process-wide and cannot be undone).

    python benchmarks/embed_speed.py                       # CPU, offline EfficientNet-Lite0, 256 images
    python benchmarks/embed_speed.py --device cuda --model resnet50 --weights none --n-images 4096

With --backend (a comma-separated list: torch,openvino,onnxruntime), the backends instead, in one process
with tuned malloc and alternating rounds: for images, (a) and (b) per backend on the same JPEGs (MVSA's
photos when present); for texts, raw forward on pre-tokenised batches and TextEncoder end to end, on 1,000
MVSA texts (generated ones without the data). An entry may name a precision, ``openvino:bf16`` or
``torch:bf16`` (default fp32); each one's embeddings are compared with the first entry's (worst and mean
cosine per item).

    python benchmarks/embed_speed.py --backend torch,openvino,onnxruntime --repeat 3
    python benchmarks/embed_speed.py --backend torch,openvino,openvino:bf16,torch:bf16 --repeat 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import RESULTS, append_to_history, jpeg_files  # noqa: E402


def _synchronize(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _naive_loop(args, bundle, prepare, device):
    """embetter's ImageLoader + TimmEncoder when installed (``pip install skmm[bench]``), else an imitation.

    embetter's TimmEncoder calls ``timm.create_model(name, pretrained=True, num_classes=0)``; that is
    redirected to the same weights skmm uses (no hub here). As in embetter, the model stays in the
    training mode timm returns it in, runs one image per forward, autograd on, default memory format.
    """
    import copy

    import torch

    try:
        if device.type != "cpu":
            raise ImportError("embetter runs on the CPU only: time its loop on this device instead")
        import timm
        from embetter.vision import ImageLoader, TimmEncoder
        from sklearn.pipeline import make_pipeline
    except ImportError as why:
        module = copy.deepcopy(bundle.module).to(memory_format=torch.contiguous_format).train()
        mean, std = bundle.mean, bundle.std

        def loop(files):
            from PIL import Image

            for path in files:
                x = prepare(Image.open(path).convert("RGB")).permute(2, 0, 1).unsqueeze(0).to(device).float() / 255
                module((x - mean) / std).detach().cpu().numpy()

        return f"embetter's loop, one image per forward ({why})", loop
    original = timm.create_model

    def offline_create_model(name, pretrained=False, **kwargs):
        model = copy.deepcopy(bundle.module).to(device, memory_format=torch.contiguous_format)
        return model.train()  # what timm.create_model returns

    timm.create_model = offline_create_model
    try:
        import embetter.vision._torchvis as torchvis

        torchvis.timm.create_model = offline_create_model
        pipeline = make_pipeline(ImageLoader(convert="RGB"), TimmEncoder(name=args.model.split(":")[-1]))
    finally:
        timm.create_model = original
    return "embetter 0.9 ImageLoader + TimmEncoder", pipeline.fit_transform


def measure(args):
    """Run (a), (b), (c) in this process; returns images/s for each."""
    import numpy as np
    import torch

    from skmm import ImageEncoder
    from skmm._device import autocast, autocast_dtype, resolve_device

    if args.tune_malloc:
        from skmm.performance import tune_malloc

        assert tune_malloc(), "tune_malloc() is not available here"
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
    with tempfile.TemporaryDirectory() as scratch:
        files, source = jpeg_files(args.n_images, args.jpeg_dir or scratch)
        weights = None if args.weights == "none" else args.weights
        encoder = ImageEncoder(args.model, weights=weights, device=args.device, batch_size=args.batch_size,
                               cache=None, num_workers=args.num_workers, jit=args.jit, decode=args.decode,
                               backend="torch")  # this mode studies the torch path; --backend compares others
        encoder.fit(files[:1])
        # (a) and (c) run on decoded pixels: the loader path's prepare and forward (the same model).
        pixels = ImageEncoder(**{**encoder.get_params(), "decode": "loader"}).fit(files[:1])
        bundle = pixels.load_backbone()
        device = resolve_device(encoder.device_)
        dtype = autocast_dtype(encoder.precision_)
        prepare, _, forward = pixels._pipeline(bundle)
        results = {"source": source, "n_images": len(files), "device": str(device),
                   "device_name": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                   "model": args.model, "batch_size": args.batch_size, "tune_malloc": args.tune_malloc,
                   "jit": args.jit, "decode": encoder._resolved_decode(),
                   "torch_threads": torch.get_num_threads(), "autocast": str(dtype)}

        # (a) raw forward on pre-decoded tensors, already on the device, and (b) ImageEncoder end to
        # end from the files: alternated for `repeat` rounds, best round kept (this machine is noisy).
        decoded = torch.stack([prepare(f) for f in files])
        batches = [decoded[i:i + args.batch_size].to(device) for i in range(0, len(files), args.batch_size)]
        with torch.inference_mode(), autocast(device, dtype):
            forward(batches[0])  # warm-up
        encoder.transform(files[: args.batch_size])  # warm-up (workers, cudnn autotune)
        raw, end_to_end = [], []
        for _ in range(args.repeat):
            _synchronize(device)
            start = time.perf_counter()
            with torch.inference_mode(), autocast(device, dtype):
                for batch in batches:
                    forward(batch)
            _synchronize(device)
            raw.append(len(files) / (time.perf_counter() - start))
            start = time.perf_counter()
            embeddings = encoder.transform(files)
            _synchronize(device)
            end_to_end.append(len(files) / (time.perf_counter() - start))
        assert np.isfinite(embeddings).all()
        results["raw_forward"], results["image_encoder"] = max(raw), max(end_to_end)
        results["raw_forward_rounds"], results["image_encoder_rounds"] = raw, end_to_end

        # (c) one image per forward, the embetter way.
        naive_files = files[: args.naive_images]
        results["naive_loop_kind"], naive = _naive_loop(args, bundle, prepare, device)
        start = time.perf_counter()
        naive(naive_files)
        _synchronize(device)
        results["naive_loop"] = len(naive_files) / (time.perf_counter() - start)
    results["b_over_a"] = results["image_encoder"] / results["raw_forward"]
    results["b_over_c"] = results["image_encoder"] / results["naive_loop"]
    return results


def _texts(n):
    from _common import MVSA_DIR

    if (MVSA_DIR / "train.txt").exists():
        from skmm.datasets import load_mvsa

        texts, _ = load_mvsa(MVSA_DIR)
        return list(texts["text"][:n]), "MVSA texts"
    from skmm.datasets import make_multimodal_classification

    X, _ = make_multimodal_classification(n_samples=n, random_state=0)
    return list(X["text"]), "generated texts"


def _rate(n_items, run):
    """Items per second of one call of ``run()``."""
    start = time.perf_counter()
    run()
    return n_items / (time.perf_counter() - start)


def measure_backends(args):
    """Per backend: images (a) raw forward and (b) ImageEncoder end to end; texts raw and end to end."""
    import torch

    from skmm import ImageEncoder, TextEncoder
    from skmm._device import autocast, autocast_dtype
    from skmm.performance import tune_malloc

    assert tune_malloc(), "tune_malloc() is not available here"
    backends = args.backend.split(",")  # "openvino" or "openvino:bf16": a backend and its precision
    with tempfile.TemporaryDirectory() as scratch:
        files, source = jpeg_files(args.n_images, args.jpeg_dir or scratch)
        texts, text_source = _texts(args.n_texts)
        images, raw_images, encoders_text, raw_texts = {}, {}, {}, {}
        for backend in backends:
            name, _, precision = backend.partition(":")
            options = dict(device="cpu", batch_size=args.batch_size, cache=None, backend=name,
                           precision=precision or "fp32")
            encoder = ImageEncoder(args.model, **options)
            encoder.fit(files[:1])
            bundle = encoder.load_backbone()
            prepare, _, forward = encoder._pipeline(bundle)
            decoded = torch.stack([prepare(f) for f in files])
            batches = [decoded[i:i + args.batch_size] for i in range(0, len(files), args.batch_size)]
            images[backend], raw_images[backend] = encoder, (forward, batches)
            text_encoder = TextEncoder(**options)
            text_encoder.fit(texts[:1])
            text_bundle = text_encoder.load_backbone()
            _, tokenize, text_forward = text_encoder._pipeline(text_bundle)
            ordered = sorted(texts, key=len, reverse=True)  # as TextEncoder batches them
            token_batches = [tokenize(ordered[i:i + args.batch_size]) for i in range(0, len(texts), args.batch_size)]
            encoders_text[backend], raw_texts[backend] = text_encoder, (text_forward, token_batches)
        rounds = {key: {backend: [] for backend in backends} for key in ("image_raw", "image_encoder", "text_raw",
                                                                         "text_encoder")}
        for _ in range(args.repeat):
            for backend in backends:  # alternated: each round runs every backend once
                forward, batches = raw_images[backend]
                text_forward, token_batches = raw_texts[backend]
                # The raw forwards run in each entry's precision as the encoder would (torch: autocast).
                dtype = autocast_dtype(images[backend].precision_) if backend.startswith("torch") else None
                with torch.inference_mode(), autocast(torch.device("cpu"), dtype):
                    forward(batches[0])  # warm
                    rounds["image_raw"][backend].append(_rate(len(files), lambda: [forward(b) for b in batches]))
                rounds["image_encoder"][backend].append(_rate(len(files), lambda: images[backend].transform(files)))
                with torch.inference_mode(), autocast(torch.device("cpu"), dtype):
                    rounds["text_raw"][backend].append(
                        _rate(len(texts), lambda: [text_forward(b) for b in token_batches]))
                rounds["text_encoder"][backend].append(
                    _rate(len(texts), lambda: encoders_text[backend].transform(texts)))
        agreement = _agreement(backends, images, files, encoders_text, texts)  # before the files go
    best = {key: {backend: max(values) for backend, values in per.items()} for key, per in rounds.items()}
    return {"images": len(files), "image_source": source, "texts": len(texts), "text_source": text_source,
            "agreement": agreement, "precisions": {backend: images[backend].precision_ for backend in backends},
            "model": args.model, "batch_size": args.batch_size, "torch_threads": torch.get_num_threads(),
            "versions": {backend: __import__("skmm.encoders._backends", fromlist=["x"]).backend_version(
                backend.partition(":")[0]) for backend in backends},
            "rounds": rounds, "best": best}


def _agreement(backends, images, files, text_encoders, texts):
    """Per backend, the worst and mean cosine of its embeddings to the first backend's (the reference)."""
    import numpy as np

    def cosines(a, b):
        return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)

    result = {}
    for kind, encoders, items in (("image", images, files), ("text", text_encoders, texts)):
        reference = encoders[backends[0]].transform(items)
        for backend in backends:
            values = cosines(encoders[backend].transform(items), reference)
            result.setdefault(backend, {})[kind] = {"worst": float(values.min()), "mean": float(values.mean())}
    return result


def _report_backends(args):
    command = [sys.executable, __file__, "--child", "--backend", args.backend, "--model", args.model,
               "--n-images", str(args.n_images), "--n-texts", str(args.n_texts), "--batch-size",
               str(args.batch_size), "--repeat", str(args.repeat)] + (["--jpeg-dir", args.jpeg_dir] if args.jpeg_dir else [])
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr)
        raise SystemExit(completed.returncode)
    run = json.loads(completed.stdout.strip().splitlines()[-1])
    best, torch_best = run["best"], run["best"]
    print(f"{run['images']} {run['image_source']}, {run['texts']} {run['text_source']}, batch {run['batch_size']}, "
          f"{run['torch_threads']} threads, tuned malloc, best of {args.repeat} alternated rounds (items/s)")
    print(f"{'backend':<12} {'image raw':>10} {'ImageEncoder':>13} {'enc/raw':>8} {'vs torch':>9} "
          f"{'text raw':>9} {'TextEncoder':>12} {'vs torch':>9}")
    for backend in run["best"]["image_raw"]:
        image_raw, image_end = best["image_raw"][backend], best["image_encoder"][backend]
        text_raw, text_end = best["text_raw"][backend], best["text_encoder"][backend]
        print(f"{backend:<12} {image_raw:>10.1f} {image_end:>13.1f} {image_end / image_raw:>8.2f} "
              f"{image_end / torch_best['image_encoder'].get('torch', float('nan')):>9.2f} {text_raw:>9.1f} "
              f"{text_end:>12.1f} {text_end / torch_best['text_encoder'].get('torch', float('nan')):>9.2f}")
    reference = next(iter(run["agreement"]))
    for backend, agreement in run["agreement"].items():
        print(f"cosine to {reference}: {backend:<14} " + "; ".join(
            f"{kind} worst {values['worst']:.5f} mean {values['mean']:.5f}" for kind, values in agreement.items()))
    output = args.output or RESULTS / "embed_speed_backends.json"
    append_to_history(output, run)
    print(f"appended to {output}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="skmm:efficientnet_lite0")
    parser.add_argument("--weights", default="DEFAULT", help="DEFAULT, none (random init) or a file")
    parser.add_argument("--n-images", type=int, default=256)
    parser.add_argument("--naive-images", type=int, default=128, help="images for the slow per-image loop")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", default="auto")
    parser.add_argument("--repeat", type=int, default=3, help="alternated rounds of (a) and (b); best kept")
    parser.add_argument("--jit", action="store_true", help="ImageEncoder(jit=True): a frozen TorchScript model")
    parser.add_argument("--decode", choices=["auto", "loader", "device"], default="auto",
                        help="ImageEncoder(decode=...) for (b): where JPEGs are decoded")
    parser.add_argument("--jpeg-dir", default=None, help="where generated JPEGs are kept between runs")
    parser.add_argument("--malloc", choices=["default", "tuned", "both"], default="both")
    parser.add_argument("--tune-malloc", action="store_true", help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--output", default=None, help="JSON file to write (default: benchmarks/results/)")
    parser.add_argument("--backend", default=None,
                        help="compare backends, e.g. torch,openvino,onnxruntime or torch,openvino:bf16")
    parser.add_argument("--n-texts", type=int, default=1000, help="texts for --backend")
    args = parser.parse_args()
    if args.num_workers != "auto":
        args.num_workers = int(args.num_workers)
    if args.child:
        print(json.dumps(measure_backends(args) if args.backend else measure(args)))
        return
    if args.backend:
        return _report_backends(args)
    modes = {"default": [False], "tuned": [True], "both": [False, True]}[args.malloc]
    runs = []
    for tuned in modes:
        command = [sys.executable, __file__, "--child", "--device", args.device, "--model", args.model,
                   "--weights", args.weights, "--n-images", str(args.n_images), "--naive-images",
                   str(args.naive_images), "--batch-size", str(args.batch_size), "--num-workers",
                   str(args.num_workers), "--repeat", str(args.repeat), "--decode", args.decode] + (["--jpeg-dir", args.jpeg_dir] if args.jpeg_dir else []) + (
                   ["--jit"] if args.jit else []) + (["--tune-malloc"] if tuned else [])
        completed = subprocess.run(command, capture_output=True, text=True)
        if completed.returncode != 0:
            sys.stderr.write(completed.stderr)
            raise SystemExit(completed.returncode)
        runs.append(json.loads(completed.stdout.strip().splitlines()[-1]))
    print(f"{runs[0]['n_images']} images ({runs[0]['source']}), model {args.model}, device {runs[0]['device_name']}, "
          f"batch {args.batch_size}, {runs[0]['torch_threads']} torch threads, autocast {runs[0]['autocast']}, "
          f"JPEGs decoded by the {runs[0]['decode']}")
    print(f"(c) = {runs[0]['naive_loop_kind']}, on the first {args.naive_images} images; "
          f"(a) and (b) use {'a frozen TorchScript' if args.jit else 'the eager'} model")
    print(f"{'malloc':<9} {'(a) raw forward':>16} {'(b) ImageEncoder':>17} {'(c) naive loop':>15} "
          f"{'b/a':>6} {'b/c':>6}   (images/s)")
    for run in runs:
        print(f"{'tuned' if run['tune_malloc'] else 'default':<9} {run['raw_forward']:>16.1f} "
              f"{run['image_encoder']:>17.1f} {run['naive_loop']:>15.1f} {run['b_over_a']:>6.2f} {run['b_over_c']:>6.2f}")
    output = args.output or RESULTS / (f"embed_speed_{args.device.split(':')[0]}_{args.model.replace(':', '_')}"
                                       f"{'_jit' if args.jit else ''}"
                                       f"{'_device_decode' if runs[0]['decode'] == 'device' else ''}.json")
    os.makedirs(os.path.dirname(output), exist_ok=True)
    with open(output, "w") as handle:
        json.dump(runs, handle, indent=2)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
