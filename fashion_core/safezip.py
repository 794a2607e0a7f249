"""Safe extraction of an uploaded catalogue ``.zip`` (the dashboard's "Upload a catalogue").

An upload is untrusted: absolute paths, ``..`` members, symbolic links and zip bombs are refused
before (and, for sizes, while) anything is written.
"""

from __future__ import annotations

import io
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from .catalogue import MAX_FILE_BYTES, is_visible
from .errors import DataError

# Zip-bomb limits for an uploaded catalogue.
MAX_ZIP_MEMBERS = 200_000
MAX_ZIP_TOTAL_BYTES = 8 * 1024**3
MAX_ZIP_MEMBER_BYTES = MAX_FILE_BYTES
MAX_ZIP_RATIO = 200  # uncompressed / compressed size of one member
ZIP_CHUNK = 1024 * 1024


def _safe_member_path(info):
    """The member's relative path parts, or a DataError for anything that could escape."""
    raw = info.filename.replace("\\", "/")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise DataError(f"zip member {info.filename!r} has an absolute path; refusing the archive.")
    parts = [p for p in PurePosixPath(raw).parts if p not in ("", ".")]
    if ".." in parts:
        raise DataError(f"zip member {info.filename!r} points outside the archive ('..'); refusing the archive.")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise DataError(f"zip member {info.filename!r} is a symbolic link; refusing the archive.")
    return parts


def extract_catalogue_zip(data, destination):
    """Safely extract an uploaded ``.zip`` of a catalogue folder.

    Refuses (``DataError``) absolute paths, ``..`` members, symbolic links, more than
    ``MAX_ZIP_MEMBERS`` members and zip bombs (size and compression-ratio limits, enforced while
    writing, not only from the headers). ``__MACOSX`` and hidden files are left out.

    Parameters
    ----------
    data : bytes
        The zip file's content.
    destination : str or Path
        An empty or not yet existing folder to extract into.

    Returns
    -------
    Path
        The folder holding the class subfolders (descends through single top-level folders).
    """
    destination = Path(destination)
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise DataError(f"{destination}: the extraction folder must be empty.")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise DataError(f"the upload is not a readable zip file ({exc}).") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise DataError(f"the zip holds {len(members)} entries; at most {MAX_ZIP_MEMBERS} are allowed.")
        planned = [(info, _safe_member_path(info)) for info in members]  # validate all before writing
        declared = sum(info.file_size for info in members)
        if declared > MAX_ZIP_TOTAL_BYTES:
            raise DataError(f"the zip would unpack to {declared / 1024**3:.1f} GiB; at most "
                            f"{MAX_ZIP_TOTAL_BYTES / 1024**3:.0f} GiB are allowed.")
        destination.mkdir(parents=True, exist_ok=True)
        written = 0
        try:
            for info, parts in planned:
                if not parts or any(not is_visible(PurePosixPath(p)) for p in parts):
                    continue
                target = destination.joinpath(*parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                written += _extract_member(archive, info, target, MAX_ZIP_TOTAL_BYTES - written)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError) as exc:
            _empty_folder(destination)
            raise DataError(f"the zip file is damaged or uses an unsupported feature ({exc}).") from None
        except BaseException:
            _empty_folder(destination)  # no half-extracted catalogue (or bomb) stays behind
            raise
    return _catalogue_root(destination)


def _empty_folder(folder):
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _extract_member(archive, info, target, budget):
    """Stream one member to ``target`` within the size limits; returns bytes written."""
    limit = min(MAX_ZIP_MEMBER_BYTES, budget, max(info.compress_size, 1) * MAX_ZIP_RATIO)
    if info.file_size > limit:
        raise DataError(f"zip member {info.filename!r} is too large or too compressed; refusing the archive.")
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with archive.open(info) as source, open(target, "wb") as sink:
        while chunk := source.read(ZIP_CHUNK):
            written += len(chunk)
            if written > limit:  # headers can lie; count what really comes out
                sink.close()
                target.unlink()
                raise DataError(f"zip member {info.filename!r} unpacks beyond its limits; refusing the archive.")
            sink.write(chunk)
    return written


def _catalogue_root(folder):
    """Descend through a single wrapping folder (``catalogue.zip`` → ``catalogue/``) to the
    folder whose subfolders are the classes."""
    folder = Path(folder)
    while True:
        children = [p for p in folder.iterdir() if is_visible(p)]
        if len(children) == 1 and children[0].is_dir() and any(p.is_dir() and is_visible(p) for p in children[0].iterdir()):
            folder = children[0]
        else:
            return folder
