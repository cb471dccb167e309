"""Peak memory while embedding many images: the encoder streams, it never holds the decoded dataset.

Writes N generated JPEG files, loads the default image encoder, then embeds every file, and reports
the process's resident memory: after loading the model (the baseline) and at its peak during the
embedding. Target: peak <= baseline + 1.5 GiB for 20,000 images.

    python benchmarks/memory.py --n-images 20000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import RESULTS  # noqa: E402


def rss_bytes():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-images", type=int, default=20000)
    parser.add_argument("--image-size", type=int, default=160, help="side of the generated JPEGs")
    parser.add_argument("--model", default="skmm:efficientnet_lite0")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tune-malloc", action="store_true", help="apply skmm.performance.tune_malloc()")
    args = parser.parse_args()

    from skmm import ImageEncoder
    from skmm.datasets import make_multimodal_classification

    if args.tune_malloc:
        from skmm.performance import tune_malloc

        tune_malloc()
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        X, _ = make_multimodal_classification(n_samples=args.n_images, image_size=args.image_size,
                                              image_format="path", image_dir=directory, random_state=0)
        paths = X["image"].tolist()
        del X
        print(f"wrote {len(paths)} JPEGs in {time.perf_counter() - start:.0f} s")
        encoder = ImageEncoder(args.model, device=args.device, cache=None, progress=True).fit(paths[:1])
        encoder.transform(paths[:64])  # the first batch allocates the model's working memory
        baseline = rss_bytes()
        peak = [baseline]
        running = True

        def sample():
            while running:
                peak[0] = max(peak[0], rss_bytes())
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        embeddings = encoder.transform(paths)
        seconds = time.perf_counter() - start
        running = False
        sampler.join()
    peak_rss = max(peak[0], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    result = {"n_images": len(paths), "model": args.model, "tune_malloc": args.tune_malloc,
              "baseline_rss_gib": baseline / 2**30, "peak_rss_gib": peak_rss / 2**30,
              "peak_minus_baseline_gib": (peak_rss - baseline) / 2**30,
              "embeddings_gib": embeddings.nbytes / 2**30, "seconds": seconds,
              "images_per_second": len(paths) / seconds}
    print(json.dumps(result, indent=2))
    print(f"peak - baseline = {result['peak_minus_baseline_gib']:.2f} GiB (target <= 1.5 GiB)")
    os.makedirs(RESULTS, exist_ok=True)
    with open(RESULTS / f"memory_{'tuned' if args.tune_malloc else 'default'}.json", "w") as handle:
        json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
