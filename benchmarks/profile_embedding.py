"""Where ImageEncoder's time goes on this machine, measured with a sampling profiler (py-spy).

py-spy samples every thread, so the decoding done by skmm's prepare threads is seen too:

    pip install py-spy
    py-spy record --rate 200 --format raw -o benchmarks/results/profile.txt -- \\
        python benchmarks/profile_embedding.py --tune-malloc
    python benchmarks/profile_embedding.py --summarize benchmarks/results/profile.txt

The summary attributes each sample to the innermost step it belongs to: JPEG decode, resize/crop,
the model forward (and its normalisation), collation, or other (hashing, Python overhead).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import jpeg_files  # noqa: E402

# (step, function names that mark it), innermost first.
_STEPS = [
    ("decode (Pillow: open, draft, load, EXIF, convert)", ("open_image", "to_rgb", "exif_transpose")),
    ("resize + crop (one Pillow resample)", ("resize",)),
    ("uint8 tensor + collate", ("stack", "_CollateGood")),
    ("model forward (normalise, conv net)", ("_ForwardImages",)),
]


def summarize(path):
    counts = collections.Counter()
    total = 0
    with open(path) as handle:
        for line in handle:
            stack, _, count = line.rstrip().rpartition(" ")
            if not count.isdigit():
                continue
            count = int(count)
            frames = stack.split(";")
            if not any("transform" in f or "run_batched" in f or "_PreparedItems" in f for f in frames):
                continue  # start-up: imports, model loading
            total += count
            step = "other (keys, Python overhead, waiting)"
            for name, markers in _STEPS:
                if any(any(marker in frame.split(" ")[0] for marker in markers) for frame in frames):
                    step = name
                    break
            counts[step] += count
    print(f"{total} samples inside transform (all threads)")
    for step, count in counts.most_common():
        print(f"  {100 * count / total:5.1f} %  {step}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-images", type=int, default=512)
    parser.add_argument("--tune-malloc", action="store_true")
    parser.add_argument("--summarize", metavar="RAW_PROFILE")
    args = parser.parse_args()
    if args.summarize:
        summarize(args.summarize)
        return
    if args.tune_malloc:
        from skmm.performance import tune_malloc

        tune_malloc()
    from skmm import ImageEncoder

    with tempfile.TemporaryDirectory() as scratch:
        files, source = jpeg_files(args.n_images, scratch)
        encoder = ImageEncoder(cache=None).fit(files[:1])
        encoder.transform(files[:64])
        encoder.transform(files)
    print(f"embedded {len(files)} {source}")


if __name__ == "__main__":
    main()
