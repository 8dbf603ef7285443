"""The host-wide lock: processes that open the same file never hold it at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HOLDER = """
import sys, time
from pathlib import Path
from farm.core.locks import file_lock
lock, log, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
for _ in range(5):
    with file_lock(lock):
        with log.open("a") as out:
            out.write(f"enter {name}\\n")
        time.sleep(0.02)
        with log.open("a") as out:
            out.write(f"leave {name}\\n")
"""


def test_processes_sharing_the_lock_file_take_turns(tmp_path: Path) -> None:
    lock, log = tmp_path / "run" / "benchmark.lock", tmp_path / "log"
    holders = [
        subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), str(log), name])
        for name in ("a", "b", "c")
    ]
    assert [holder.wait(60) for holder in holders] == [0, 0, 0]
    events = log.read_text().split("\n")[:-1]
    assert len(events) == 30
    # Every "enter" is followed by the same holder's "leave": no two ever held it together.
    for enter, leave in zip(events[::2], events[1::2], strict=True):
        assert enter.startswith("enter") and leave == enter.replace("enter", "leave")
