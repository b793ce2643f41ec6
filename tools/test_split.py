"""`make test`: the whole suite, as two pytest processes at once over disjoint halves of about
equal time, so both cores work: the end-to-end tests through the API in one; the integration
and unit tests with the end-to-end tests that mostly wait on server processes in the other.
Each process has its own PostgreSQL databases (named by process id), SQLite files and ports,
so the halves never meet.
Prints each half's report when it ends; fails when either fails.

Arguments, when given, go to one plain pytest run instead (`make test ARGS=tests/unit`).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROCESS_TESTS = [
    f"tests/e2e/{name}.py"
    for name in ("test_events_under_kill", "test_stream", "test_server_process", "test_demo")
]
HALVES = (
    ["tests/e2e", *(f"--ignore={path}" for path in PROCESS_TESTS)],
    ["tests/integration", "tests/unit", *PROCESS_TESTS],
)


def main(argv: list[str]) -> int:
    pytest = [sys.executable, "-m", "pytest", "-q"]
    if argv:
        return subprocess.call([*pytest, *argv])  # noqa: S603 (our interpreter, our arguments)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="marketplane-tests-") as workdir:
        logs = [Path(workdir) / f"half-{n}.log" for n in range(len(HALVES))]
        running = []
        for paths, log in zip(HALVES, logs, strict=True):
            with log.open("wb") as out:
                command = [*pytest, *paths]
                running.append(subprocess.Popen(command, stdout=out, stderr=out))  # noqa: S603
        codes = [process.wait() for process in running]
        for paths, log, code in zip(HALVES, logs, codes, strict=True):
            print(f"==== {' '.join(paths)}: exit {code} ====")
            print(log.read_text(errors="replace"), flush=True)
    print(f"==== {time.monotonic() - started:.0f} s; exits {codes} ====")
    return 0 if all(code == 0 for code in codes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
