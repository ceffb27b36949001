"""Real storage faults for tests: a small tmpfs that fills up, a file system that goes read-only.

These need root (mount); where mounting is not allowed the test is skipped
with the reason, never faked. CI runs as root and sets
KIOSK_REQUIRE_FAULT_INJECTION=1, so there a missing fault is a failure, not a
silent skip. A non-root run still gets the read-only case
through directory permissions (``read_only_dir``), which bind root too
little to be a test when run as root.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest


def unavailable(reason: str) -> None:
    """This machine cannot inject the fault: skip with the reason, or fail where CI requires the fault."""
    if os.environ.get("KIOSK_REQUIRE_FAULT_INJECTION") == "1":
        pytest.fail(f"fault injection required (KIOSK_REQUIRE_FAULT_INJECTION=1) but unavailable: {reason}")
    pytest.skip(reason)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


def can_mount() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount") is not None


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "16m") -> Iterator[Path]:
    """A size-limited tmpfs at ``path``: writing past ``size`` fails with ENOSPC, like a full disk."""
    if not can_mount():
        unavailable("a size-limited tmpfs needs root (mount); run the suite as root to test a full disk")
    path.mkdir(parents=True, exist_ok=True)
    result = _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path))
    if result.returncode != 0:
        unavailable(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield path
    finally:
        _unmount(path)


@contextlib.contextmanager
def ext4_image(path: Path, size: str = "32M") -> Iterator[tuple[Path, str]]:
    """A loop-mounted ext4 with errors=remount-ro, so a file system error turns it read-only
    under running processes (the way a failing disk behaves). Yields (mount point, loop device)."""
    if not can_mount() or shutil.which("mkfs.ext4") is None:
        unavailable("a loop-mounted ext4 needs root, mount and mkfs.ext4")
    image = path.with_name(path.name + ".img")
    path.mkdir(parents=True, exist_ok=True)
    _run("truncate", "-s", size, str(image))
    made = _run("mkfs.ext4", "-q", "-F", str(image))
    mounted = _run("mount", "-o", "loop,errors=remount-ro", str(image), str(path)) if made.returncode == 0 else made
    if mounted.returncode != 0:
        unavailable(f"cannot loop-mount an ext4 image here: {mounted.stderr.strip()}")
    device = _run("findmnt", "-no", "SOURCE", str(path)).stdout.strip()
    try:
        yield path, device
    finally:
        _unmount(path)
        image.unlink(missing_ok=True)


def _unmount(path: Path) -> None:
    if _run("umount", str(path)).returncode != 0:
        _run("umount", "-l", str(path))  # something still holds a file: detach now, free when closed


def trigger_fs_error(device: str) -> None:
    """Make ext4 record an error on ``device``; with errors=remount-ro it goes read-only at once."""
    knob = Path("/sys/fs/ext4") / os.path.basename(device) / "trigger_fs_error"
    if not knob.exists():
        unavailable(f"{knob} is not available on this kernel")
    knob.write_text("reliability test\n")


def remount_after_error(mount_point: Path, device: str) -> None:
    """What an admin does after the disk went read-only: unmount, check the file system, mount again."""
    image = _run("losetup", "-nO", "BACK-FILE", device).stdout.strip()
    _unmount(mount_point)
    _run("e2fsck", "-fy", image)
    result = _run("mount", "-o", "loop,errors=remount-ro", image, str(mount_point))
    assert result.returncode == 0, result.stderr


def remount(path: Path, mode: str) -> None:
    """``mode`` "ro" or "rw": the whole file system, as an admin would (fails while files are open for writing)."""
    result = _run("mount", "-o", f"remount,{mode}", str(path))
    assert result.returncode == 0, result.stderr


def fill(directory: Path, name: str = "filler.bin") -> Path:
    """Write a file until the file system has no space left (ENOSPC); returns it so the test can free it."""
    filler = directory / name
    chunk = b"\0" * (64 * 1024)
    with open(filler, "wb", buffering=0) as fh:
        while True:
            try:
                fh.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        # the last partial block too
        for size in (4096, 512, 1):
            while True:
                try:
                    fh.write(b"\0" * size)
                except OSError:
                    break
    return filler
