"""A dataset put into the local Minari folder whole (make_dataset.py's last step): built in a
hidden staging folder beside the datasets, synced to disk, then renamed into place, so a
kill or a failure at any moment leaves no dataset or the complete one; and by one writer
per dataset id at a time, held by a lock file in the Minari folder.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator

from offline.readers import minari_root
from utils import UsageError, fsync, locked_file


def writer_lock(dataset_id: str) -> IO[str]:
    """The lock file of `dataset_id` (hidden, in the Minari folder), held (utils.locked_file)
    until it closes: one writer per id, so that a second one neither removes the first's
    staging folder nor publishes over it. UsageError if another process holds it. The file
    stays (Minari ignores files): deleting it while others may open it would reopen the
    race."""
    root = minari_root()
    path = root / f".make_dataset-{dataset_id.replace('/', '_')}.lock"
    try:
        handle = locked_file(path)
    except OSError as error:
        raise UsageError(f"cannot write in the Minari folder {root} ({error.strerror}); set "
                         f"MINARI_DATASETS_PATH to a folder this user can write") from None
    if handle is None:
        raise UsageError(f"another make_dataset.py is writing {dataset_id} now (it holds "
                         f"{path}); wait for it to end")
    return handle


def write_whole(dataset_id: str, folder: Path, create: Callable[[], None]) -> None:
    """`create()` writes the dataset `dataset_id` under $MINARI_DATASETS_PATH, which points
    at a staging folder meanwhile; the finished dataset is then renamed to `folder`. Call
    it holding writer_lock(dataset_id)."""
    staging = staging_folder(dataset_id)
    try:
        with minari_datasets_path(staging):
            create()
        publish(staging / dataset_id, folder, dataset_id)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def staging_folder(dataset_id: str) -> Path:
    """A new hidden folder in the Minari folder (so the final rename stays on one file
    system, and Minari's listings skip it), after removing those a killed write of the same
    id left (the writer lock makes this process the id's only writer)."""
    root = minari_root()
    root.mkdir(parents=True, exist_ok=True)
    prefix = f".make_dataset-{dataset_id.replace('/', '_')}-"
    # mkdtemp's names are the prefix and 8 characters: a longer name is another id's
    # staging folder (e.g. of ns/x-v0-b-v0 for ns/x-v0), which its own writer holds
    for stale in root.glob(glob.escape(prefix) + "?" * 8):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


@contextlib.contextmanager
def minari_datasets_path(folder: Path) -> Iterator[None]:
    """Minari writes under $MINARI_DATASETS_PATH, read at each call: point it at `folder`
    for the calls inside, and back after."""
    saved = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(folder)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = saved


def publish(built: Path, folder: Path, dataset_id: str) -> None:
    """Rename the complete dataset `built` to `folder` after its namespace (created as Minari
    creates it) and synced to disk, so that the rename is the one step that makes it
    appear, and survives a power loss."""
    from minari.dataset.minari_dataset import parse_dataset_id
    from minari.namespace import create_namespace, list_local_namespaces

    for path in sorted(built.rglob("*"), reverse=True) + [built]:  # files before folders
        fsync(path)
    namespace = parse_dataset_id(dataset_id)[0]
    if namespace is not None and namespace not in list_local_namespaces():
        create_namespace(namespace)
    folder.parent.mkdir(parents=True, exist_ok=True)
    os.rename(built, folder)
    fsync(folder.parent)
