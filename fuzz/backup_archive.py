"""The backup archive check (appliance.system.backup.check_backup) that runs before a restore.

The first octet chooses how the rest is read: as the tar inside the tar.gz (gzipped here, so the
fuzzer mutates members and headers, not deflate blocks) or as the uploaded bytes themselves.

Contract: ``check_backup`` raises only BackupError (listing every problem), leaves no staged
file behind, and never writes outside the data directory.
"""

from __future__ import annotations

import gzip
import io

from fuzz.harness import Target, instrumented, main, scratch

with instrumented():
    from appliance.system import backup

_dir = scratch("plateau-fuzz-backup-")
_data = _dir / "data"


def one_input(data: bytes) -> None:
    if not data:
        return
    blob = gzip.compress(data[1:], compresslevel=1, mtime=0) if data[0] & 1 else data[1:]
    try:
        backup.check_backup(io.BytesIO(blob), None, _data)
    finally:
        left = [p.name for p in _data.iterdir()] if _data.exists() else []
        if left:
            raise AssertionError(f"check_backup left {left} in the data directory")


TARGET = Target("backup_archive", __doc__ or "", one_input, (backup.BackupError,))

if __name__ == "__main__":
    main(TARGET)
