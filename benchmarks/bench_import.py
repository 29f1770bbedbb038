"""Benchmark 1: time to ``import`` the package in a fresh interpreter.

Each sample is a new ``python -c`` process that times ``import <package>`` with
``time.perf_counter`` around the import statement alone (interpreter start-up excluded).
The first sample is reported as the cold figure; the median of the rest is the warm one.
A second series also touches ``start_run``, ``log_metric`` and ``tracking.MlflowClient``
after the import, since a lazy package pays its imports on first use.
"""

from __future__ import annotations

import subprocess
import sys

from _common import base_parser, emit, lib_version, quiet_env, summary

PACKAGES = {"mltrack": "jupyter_mltrack", "mlflow": "mlflow"}
SNIPPET = (
    "import time\n"
    "t0 = time.perf_counter()\n"
    "import {package}\n"
    "{touch}"
    "print(time.perf_counter() - t0)\n"
)
# A lazy package defers work to the first attribute access; this measures that too.
TOUCH_API = "{package}.start_run, {package}.log_metric, {package}.tracking.MlflowClient\n"


def import_seconds(package: str, touch_api: bool = False) -> float:
    """Seconds one fresh interpreter spends on ``import package`` (and first API access)."""
    touch = TOUCH_API.format(package=package) if touch_api else ""
    out = subprocess.run(
        [sys.executable, "-c", SNIPPET.format(package=package, touch=touch)],
        capture_output=True,
        text=True,
        env=quiet_env(),
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    args = base_parser(__doc__.splitlines()[0]).parse_args()
    repeats = 4 if args.quick else 11
    package = PACKAGES[args.lib]
    samples = [import_seconds(package) for _ in range(repeats)]
    with_api = [import_seconds(package, touch_api=True) for _ in range(repeats)]
    emit(
        {
            "lib": args.lib,
            "package": package,
            "version": lib_version(args.lib),
            "cold_s": samples[0],
            "warm": summary(samples[1:]),
            "with_api": summary(with_api[1:]),
        }
    )


if __name__ == "__main__":
    main()
