"""What load progress costs: a folder of many small files loaded with and without progress reports.

    python -m benchmarks.load_progress --files 48000 --repeats 5

The folder is written once (a mix of sizes, a few files that do not decode)
and loaded through :class:`~rlm_mcp.core.service.RLMService`, as the server does,
alternating a load without a progress reporter and one whose reporter counts
the reports (the MCP layer's work per report is one notification). The files
stay in the page cache after the first load, so the figure is the overhead on
the walk and the read, not on the disk.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import anyio

from rlm_mcp.config import Settings
from rlm_mcp.core.service import RLMService
from rlm_mcp.progress import Progress


def write_folder(root: Path, files: int) -> int:
    rng = random.Random(5)
    total = 0
    for i in range(files):
        folder = root / f"d{i // 500:03d}"
        folder.mkdir(exist_ok=True)
        path = folder / f"f{i:05d}.txt"
        if i % 997 == 0:
            data = "caf\u00e9 au lait\n".encode("latin-1")  # does not decode as UTF-8: left out and listed
        else:
            data = (f"line {i} of a small file\n" * rng.randint(1, 120)).encode()
        path.write_bytes(data)
        total += len(data)
    return total


async def load_once(service: RLMService, folder: Path, with_progress: bool) -> tuple[float, int]:
    reports = 0

    async def count(report: Progress) -> None:
        nonlocal reports
        reports += 1

    started = time.perf_counter()
    loaded = await service.load_context(path=str(folder), progress=count if with_progress else None)
    elapsed = time.perf_counter() - started
    await service.close_session(loaded.session_id)
    return elapsed, reports


async def main(files: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory(prefix="rlm-load-progress-") as tmp:
        work = Path(tmp)
        folder = work / "corpus"
        folder.mkdir()
        size = write_folder(folder, files)
        settings = Settings(allowed_roots=[work], data_dir=work / "data", max_corpus_mb=4096)
        service = RLMService(settings)
        async with service.running():
            await load_once(service, folder, False)  # warm the page cache and the derived-file store
            plain, watched, counts = [], [], []
            for _ in range(repeats):
                plain.append((await load_once(service, folder, False))[0])
                elapsed, reports = await load_once(service, folder, True)
                watched.append(elapsed)
                counts.append(reports)
        a, b = statistics.median(plain), statistics.median(watched)
        print(f"{files:,} files, {size / 1e6:.1f} MB, {repeats} loads each (medians)")
        print(f"  without progress: {a:.2f} s   (all: {', '.join(f'{x:.2f}' for x in plain)})")
        print(f"  with progress:    {b:.2f} s   (all: {', '.join(f'{x:.2f}' for x in watched)})")
        print(f"  difference: {b - a:+.2f} s ({(b - a) / a:+.1%}); {statistics.median(counts):.0f} reports per load")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=48_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    anyio.run(main, args.files, args.repeats)


if __name__ == "__main__":
    cli()
