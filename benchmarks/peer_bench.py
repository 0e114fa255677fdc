"""Side by side, whole process: this project's `main.py extract` against RapidOCR 3.10 with its defaults.

RapidOCR is the package a user would `pip install` instead. It runs in its own virtualenv, built by
this script from PyPI the first time (outside the repository), so neither install can influence the
other. Each round runs both commands over the same images, in alternating order, as fresh processes:
what is timed is what a user waits for (interpreter start, imports, model load, every image).

    python benchmarks/peer_bench.py                       # ../shared/receipts/real, 5 rounds
    python benchmarks/peer_bench.py IMAGES_DIR --rounds 9 --profile balanced
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER_REQUIREMENTS = ["rapidocr==3.10.0", "onnxruntime==1.32.0"]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}

# Defaults only: RapidOCR() as its README shows it, one call per image.
PEER_SCRIPT = """
import sys
from rapidocr import RapidOCR
engine = RapidOCR()
for path in sys.argv[1:]:
    result = engine(path)
    print(len(result.txts or ()), flush=True)
"""


def image_paths(folder: Path) -> list[Path]:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        sys.exit(f"no images in {folder}")
    return paths


def ensure_peer_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    wanted = " ".join(PEER_REQUIREMENTS)
    if stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"building the peer's virtualenv in {venv} ({wanted}) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEER_REQUIREMENTS], check=True)
    stamp.write_text(wanted)
    return python


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if completed.returncode not in (0, 1):  # extract exits 1 when some image could not be read
        sys.exit(f"{command[0]} failed ({completed.returncode}):\n{completed.stderr.decode(errors='replace')[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="?", default=str(ROOT.parent / "shared" / "receipts" / "real"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", default="ultra_rapido")
    parser.add_argument("--venv", default=str(Path.home() / ".cache" / "ocr-peer-bench" / "rapidocr-3.10"))
    args = parser.parse_args()

    folder = Path(args.images)
    if not folder.is_dir():
        sys.exit(f"{folder} is not a folder of images")
    paths = [str(p) for p in image_paths(folder)]
    peer_python = ensure_peer_venv(Path(args.venv))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "ORT_"))}
    ours_cmd = [sys.executable, "main.py", "extract", "--profile", args.profile, *paths]
    peer_cmd = [str(peer_python), "-c", PEER_SCRIPT, *paths]

    ours: list[float] = []
    peer: list[float] = []
    for round_index in range(args.rounds):
        pair = [(ours_cmd, ours), (peer_cmd, peer)]
        for command, times in pair if round_index % 2 == 0 else reversed(pair):
            times.append(timed(command, env))
        print(f"round {round_index + 1}: ours {ours[-1]:.2f} s, rapidocr {peer[-1]:.2f} s", file=sys.stderr)

    ours_median, peer_median = statistics.median(ours), statistics.median(peer)
    print(f"{len(paths)} images from {folder}, {args.rounds} alternating rounds, whole process")
    print("| command | median s | min s | max s | s per image |")
    print("|---|---|---|---|---|")
    for name, times in ((f"main.py extract --profile {args.profile}", ours), ("RapidOCR 3.10 defaults", peer)):
        print(f"| {name} | {statistics.median(times):.2f} | {min(times):.2f} | {max(times):.2f} "
              f"| {statistics.median(times) / len(paths):.3f} |")
    print(f"ratio (ours / RapidOCR, medians): {ours_median / peer_median:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
