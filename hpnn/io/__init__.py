"""Files: the atomic, checksummed archive format that models and checkpoints use."""

from hpnn.io.archive import ArchiveError, atomic_write, read_archive, write_archive

__all__ = ["ArchiveError", "atomic_write", "read_archive", "write_archive"]
