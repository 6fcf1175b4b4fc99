"""One entry point for every kind of sequence file: ``open_sequence(path, **options)``.

=========================  ==============================================================
path                       read as
=========================  ==============================================================
.mp4 .avi .mov .mkv .gif   video, RGB, lazily decoded (``channels=1`` for grey)
folder of images           one frame per image in natural order; ``RAD*.png``: HKO-7 dBZ
folder of .h5 files        ODIM-HDF5 radar, one or more frames per file
.npy / .npz                arrays, memory-mapped (``layout``, ``sequence``, ``key``)
.h5 .hdf5 .hdf             ODIM radar if it is ODIM, else a dataset (``dataset``, ``layout``)
=========================  ==============================================================

Options (each reader takes those that apply to it; others are refused, not ignored):
``units`` ("intensity", "dBZ", "mm/h"), ``channels`` (1 or 3), ``value_range`` (stored
values at model scale 0 and 1, intensity only), ``frame_interval_s``, ``layout`` (axes of an
array, e.g. "TNHW"), ``sequence`` (which one of N), ``key`` (.npz member), ``dataset``
(HDF5 path), ``quantity`` (ODIM, e.g. "DBZH" or "RATE").
"""

from __future__ import annotations

from pathlib import Path

from mimviewer.access import check_readable
from mimviewer.data.arrays import open_hdf5_array, open_npy, open_npz
from mimviewer.data.images import IMAGE_SUFFIXES, ImageFolderSequence
from mimviewer.data.odim import H5_ERRORS, ODIM_SUFFIXES, OdimSequence, hdf5_damage, is_odim, open_hdf5
from mimviewer.data.sequence import Sequence
from mimviewer.data.video import VIDEO_SUFFIXES, VideoSequence
from mimviewer.errors import DataError

_ARRAY_OPTIONS = {"layout", "sequence", "units", "channels", "value_range", "frame_interval_s"}
OPTIONS: dict[str, set[str]] = {
    "video": {"channels"},
    "images": {"units", "channels", "value_range", "frame_interval_s"},
    "npy": _ARRAY_OPTIONS,
    "npz": _ARRAY_OPTIONS | {"key"},
    "hdf5": _ARRAY_OPTIONS | {"dataset"},
    "odim": {"quantity", "channels", "frame_interval_s"},
}
SUFFIXES: tuple[str, ...] = (*VIDEO_SUFFIXES, ".npy", ".npz", *ODIM_SUFFIXES)


def _check_options(path: Path, kind: str, options: dict) -> dict:
    unknown = set(options) - OPTIONS[kind]
    if unknown:
        raise DataError(
            f"{path}: option(s) {', '.join(sorted(unknown))} do not apply to {kind} input "
            f"(it takes {', '.join(sorted(OPTIONS[kind]))})"
        )
    return {name: value for name, value in options.items() if value is not None}


def open_sequence(path: str | Path, **options) -> Sequence:
    """Open any supported sequence file or folder; frames are read only when asked for."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        return _open_folder(path, options)
    check_readable(path, DataError, "sequence")  # permission denied said as such, not "corrupt"
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return VideoSequence(path, **_check_options(path, "video", options))
    if suffix == ".npy":
        return open_npy(path, **_check_options(path, "npy", options))
    if suffix == ".npz":
        return open_npz(path, **_check_options(path, "npz", options))
    if suffix in ODIM_SUFFIXES:
        handle = open_hdf5(path)
        try:
            if is_odim(handle):
                handle.close()
                return OdimSequence([path], **_check_options(path, "odim", options))
            return open_hdf5_array(path, handle, **_check_options(path, "hdf5", options))
        except DataError:
            handle.close()
            raise
        except H5_ERRORS as exc:  # h5py meeting a damaged structure
            handle.close()
            raise hdf5_damage(path, exc) from None
    if suffix in IMAGE_SUFFIXES:
        raise DataError(f"{path}: a single image; open the folder of frames it belongs to")
    raise DataError(
        f"{path}: unknown kind of file {suffix or '(no extension)'}; known: {', '.join(SUFFIXES)}"
    )


def _open_folder(folder: Path, options: dict) -> Sequence:
    entries = [p for p in folder.iterdir() if p.is_file()]
    if any(p.suffix.lower() in IMAGE_SUFFIXES for p in entries):
        return ImageFolderSequence(folder, **_check_options(folder, "images", options))
    radar = sorted(p for p in entries if p.suffix.lower() in ODIM_SUFFIXES)
    if radar:
        return OdimSequence(radar, source=str(folder), **_check_options(folder, "odim", options))
    raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) or ODIM files in this folder")
