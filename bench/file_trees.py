"""File trees over SSH (issue 12): what a backup of a server's tree costs against a plain rsync of it.

Production's server is an sshd on 127.0.0.1 (tests/support/sshd.py), its tree FILES files of SIZE
bytes each. Measured in one run: a plain `rsync -a` of the tree over ssh into an empty directory (the
baseline); the first backup_source (Doppel's login check, rsync into its mirror, hard links into the
backup's directory); a second backup_source after one file changed (only that file moves); and the
restore of the tree into a DR server (its own sshd) with restore_file_trees.

    python bench/file_trees.py [--files 1000] [--size 102400] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clouds.openstack import OpenStackDriver  # noqa: E402
from clouds.openstack.file_trees import FOLDER, doppel_identity, pinned, public_key, resolve  # noqa: E402
from tests.support.sshd import SshServer  # noqa: E402


def connection(outputs: dict):
    def stack(name):
        return SimpleNamespace(id=f"id-{name}", name=name, status="CREATE_COMPLETE", status_reason="",
                               created_at="", parameters={}, tags=[],
                               outputs=[{"output_key": k, "output_value": v} for k, v in outputs[name].items()])
    return SimpleNamespace(orchestration=SimpleNamespace(
        find_stack=lambda name, ignore_missing=True: stack(name) if name in outputs else None,
        get_stack=lambda stack_id: stack(stack_id.removeprefix("id-")),
        get=lambda path, raise_exc=False: SimpleNamespace(status_code=200, text="",
                                                          json=lambda: {"resources": {}}),
        resources=lambda raw: []))


def one_round(work: Path, files: int, size: int) -> dict:
    identity = doppel_identity(work / "state")
    mount = work / "srv" / "tree"
    prod = SshServer(work / "prod", authorized_key=public_key(identity), mount_point=mount)
    dr = SshServer(work / "dr", authorized_key=public_key(identity), mount_point=mount, host_key=prod.host_key)
    try:
        for index in range(files):
            folder = prod.root / f"d{index // 100:03d}"
            folder.mkdir(exist_ok=True)
            (folder / f"f{index:05d}.bin").write_bytes(os.urandom(size))
        outputs = {"shop-prod": {"ip": "127.0.0.1", "port": prod.port},
                   "doppel-dr": {"ip": "127.0.0.1", "port": dr.port}}
        entry = {"driver": "openstack", "cloud": "c", "stack": "shop-prod", "template": "/t.yaml",
                 "files": [{"name": "tree", "path": str(mount), "host": "{outputs.ip}", "port": "{outputs.port}",
                            "user": "root", "host_key": prod.public_host_key}]}
        driver = OpenStackDriver({"shop": entry}, connect=lambda *_: connection(outputs), state_dir=work / "state")
        server = resolve(driver.productions["shop"]["files"][0], outputs["shop-prod"], owner="production shop",
                         production="shop", identity=identity)
        with pinned(server) as ssh:
            started = time.perf_counter()
            subprocess.run(["rsync", "-a", "-e", shlex.join(ssh), server.remote, f"{work / 'plain'}/"], check=True)
            plain = time.perf_counter() - started
        started = time.perf_counter()
        driver.backup_source("shop")
        first = time.perf_counter() - started
        (prod.root / "d000" / "f00000.bin").write_bytes(os.urandom(size))
        started = time.perf_counter()
        root = driver.backup_source("shop").root
        second = time.perf_counter() - started
        started = time.perf_counter()
        driver.restore_file_trees("dr", root, production="shop")
        restore = time.perf_counter() - started
        assert len(list((dr.root).rglob("*.bin"))) == files == len(list((root / FOLDER / "tree").rglob("*.bin")))
        return {"plain": plain, "first": first, "second": second, "restore": restore}
    finally:
        prod.stop()
        dr.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size", type=int, default=100 * 1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for number in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="doppel-bench-files-") as work:
            runs.append(one_round(Path(work), args.files, args.size))
        print(f"run {number + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in runs[-1].items()), flush=True)
    medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    print(f"{args.files} files of {args.size} B; medians: " + ", ".join(f"{k} {v:.2f} s" for k, v in medians.items()))
    print(f"first backup / plain rsync: {medians['first'] / medians['plain']:.2f}x; "
          f"second backup (one file changed) / first: {medians['second'] / medians['first']:.2f}x")


if __name__ == "__main__":
    main()
