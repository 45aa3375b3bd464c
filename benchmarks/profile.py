"""`make profile`: the /v1/batch load under py-spy, written as a flame graph (SVG)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import servers
from benchmarks.http import run_load
from benchmarks.payloads import batch_body
from benchmarks.report import RESULTS

SECONDS = 15


def main() -> int:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print(
            "py-spy is not installed: make profile installs it with the dev extras", file=sys.stderr
        )
        return 1
    RESULTS.mkdir(exist_ok=True)
    output = RESULTS / f"profile-batch-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.svg"
    with tempfile.TemporaryDirectory() as tmp:
        server, source = servers.gateway(Path(tmp))
        with server:
            assert server.process is not None
            load = threading.Thread(
                target=run_load,
                args=(server.url + "/v1/batch", batch_body(100), SECONDS + 2, source["write_key"]),
            )
            load.start()
            subprocess.run(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(server.process.pid),
                    "--duration",
                    str(SECONDS),
                    "--rate",
                    "200",
                    "--gil",
                    "--format",
                    "flamegraph",
                    "--output",
                    str(output),
                ],
                check=True,
                capture_output=True,
            )
            load.join()
    print(f"flame graph: {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
