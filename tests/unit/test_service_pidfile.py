"""tests/services/pidfile.sh: a pid file names its service only while the process holding the number is the one
the file was written for.

CI's machine boots from a snapshot of a disk whose run directories still hold the pid files of services that
ran before; its pids start afresh and wrap at 32768. A script that believed `kill -0` alone took strangers for
Placement, Glance and Nova, never started them, and failed every OpenStack test of the run.
"""
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

HELPER = Path(__file__).resolve().parents[2] / "tests/services/pidfile.sh"


def pid_alive(pid_file: Path) -> bool:
    run = subprocess.run(["bash", "-c", f'source "{HELPER}"; pid_alive "$1"', "-", str(pid_file)],
                         capture_output=True, text=True, timeout=30)
    assert run.stderr == "", run.stderr
    return run.returncode == 0


@pytest.fixture
def process(tmp_path):
    """A live process, of an executable whose name has a space and a parenthesis in it (as /proc/PID/stat's
    comm field may)."""
    program = tmp_path / "slow) worker"
    shutil.copy(shutil.which("sleep"), program)
    child = subprocess.Popen([str(program), "60"])
    yield child
    child.kill()
    child.wait()


def test_the_process_the_file_was_written_for_is_alive(tmp_path, process):
    pid_file = tmp_path / "svc.pid"
    pid_file.write_text(f"{process.pid}\n")
    assert pid_alive(pid_file)


def test_a_process_that_took_the_number_after_the_file_was_written_is_not_the_service(tmp_path, process):
    # a file written an hour before its number's current holder started: a reboot, or pids that wrapped
    pid_file = tmp_path / "svc.pid"
    pid_file.write_text(f"{process.pid}\n")
    an_hour_ago = time.time() - 3600
    os.utime(pid_file, (an_hour_ago, an_hour_ago))
    assert not pid_alive(pid_file)


def test_a_dead_process_a_missing_file_and_a_file_without_a_number_are_not_alive(tmp_path, process):
    pid_file = tmp_path / "svc.pid"
    process.kill()
    process.wait()
    pid_file.write_text(f"{process.pid}\n")
    assert not pid_alive(pid_file)
    assert not pid_alive(tmp_path / "never-written.pid")
    pid_file.write_text("\n")
    assert not pid_alive(pid_file)
