"""Why a served step on a small model costs more: the in-process training loop of
bench/serve.py alone, beside a thread of the same process that spins ``--spin-ms`` in every
``--period-ms``, and beside a process that spins the same way.

A thread of the same process shares the interpreter lock with the torch thread, as the
server's event loop does; another process shares only the cores. Rounds alternate the three
cases in fresh processes; the figures are medians of each run's median step.

    python bench/lock_share.py [--steps 60] [--rounds 3] [--spin-ms 1] [--period-ms 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

SPIN = r"""
import threading, time, sys
spin, period = float(sys.argv[1]) / 1000, float(sys.argv[2]) / 1000
def burn():
    while True:
        t = time.perf_counter()
        while time.perf_counter() - t < spin:
            pass
        time.sleep(period - spin)
"""

LOOP = r"""
import io, json, sys
mode = sys.argv[3]
if mode == "thread":
    threading.Thread(target=burn, daemon=True).start()
steps = int(sys.argv[4])
sys.argv = ["client", "inprocess", sys.argv[5]]
sys.stdin = io.StringIO(f"{steps}\n")
exec(CLIENT)
"""


def main() -> None:
    import serve

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--spin-ms", type=float, default=1.0)
    p.add_argument("--period-ms", type=float, default=5.0)
    args = p.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT.parent)}
    results: dict[str, list[float]] = {"alone": [], "thread": [], "process": []}
    with tempfile.TemporaryDirectory() as tmp:
        examples = Path(tmp) / "examples.json"
        examples.write_text(json.dumps(serve.examples("short", 8)))
        env["KITCHEN_HOME"] = tmp
        code = SPIN + f"CLIENT = {serve.CLIENT!r}\n" + LOOP
        spin = [str(args.spin_ms), str(args.period_ms)]
        for _ in range(args.rounds):
            for case in results:
                burner = None
                if case == "process":
                    burner = subprocess.Popen(
                        [sys.executable, "-c", SPIN + "burn()", *spin], env=env
                    )
                try:
                    out = subprocess.run(
                        [sys.executable, "-c", code, *spin, case, str(args.steps), str(examples)],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout.splitlines()[-1]
                finally:
                    if burner is not None:
                        burner.kill()
                        burner.wait()
                results[case].append(statistics.median(json.loads(out)["times"]))
    print(
        f"in-process loop, {args.steps} steps x {args.rounds} rounds; "
        f"spinning {args.spin_ms} ms in every {args.period_ms} ms"
    )
    for case, runs in results.items():
        listed = ", ".join(f"{t * 1000:.1f}" for t in runs)
        print(f"{case:8} median step {statistics.median(runs) * 1000:7.1f} ms  (runs: {listed})")


if __name__ == "__main__":
    main()
