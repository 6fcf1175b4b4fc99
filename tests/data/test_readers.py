"""Every reader on files written here in the real formats: what a user opens, they get back."""

import ctypes
import mmap
import os
import zipfile
from pathlib import Path

import h5py
import imageio.v2 as imageio
import numpy as np
import pytest

from mimviewer.data import fit_to, from_array, open_sequence
from mimviewer.data.units import hko_pixel_to_dbz, rain_rate_to_unit
from mimviewer.errors import DataError, ShapeError


def moving_square(frames: int, height: int = 32, width: int = 48) -> np.ndarray:
    """(T, H, W, 3) uint8: a bright square sliding right over a dark gradient, easy to encode."""
    video = np.zeros((frames, height, width, 3), np.uint8)
    video[..., 2] = np.linspace(0, 120, width, dtype=np.uint8)
    for t in range(frames):
        video[t, 8:20, 2 * t : 2 * t + 12] = 220
    return video


# -- video -------------------------------------------------------------------------------------
def test_mp4_written_by_ffmpeg_reads_back_lazily_with_its_frame_rate(tmp_path):
    video = moving_square(12)
    path = tmp_path / "clip.mp4"
    imageio.mimwrite(path, video, fps=5, macro_block_size=16, quality=9)
    seq = open_sequence(path)
    assert len(seq) == 12
    assert seq.meta.kind == "video" and seq.meta.units == "intensity"
    assert seq.meta.frame_size == (32, 48) and seq.meta.channels == 3
    assert seq.meta.frame_interval_s == pytest.approx(0.2)
    frames = seq.frames(0, 12)
    assert frames.shape == (12, 3, 32, 48) and frames.dtype == np.float32
    expected = video.transpose(0, 3, 1, 2) / 255.0
    assert np.abs(frames - expected).mean() < 0.03  # lossy codec, same picture
    # Seeking back and forth gives the same frames as one pass.
    np.testing.assert_allclose(seq.frames(7, 10), frames[7:10], atol=2 / 255)
    np.testing.assert_allclose(seq.frames(2, 4), frames[2:4], atol=2 / 255)
    grey = open_sequence(path, channels=1).frames(3, 4)
    assert grey.shape == (1, 1, 32, 48)
    np.testing.assert_allclose(grey[0, 0], frames[3].transpose(1, 2, 0) @ [0.299, 0.587, 0.114], atol=1e-5)


def test_gif_reads_back_exactly(tmp_path):
    video = moving_square(6, 24, 24)
    path = tmp_path / "clip.gif"
    imageio.mimwrite(path, video, duration=250, loop=0)
    seq = open_sequence(path)
    assert len(seq) == 6 and seq.meta.frame_size == (24, 24)
    np.testing.assert_allclose(seq.frames(), video.transpose(0, 3, 1, 2) / 255.0, atol=3 / 255)


# -- image folders -----------------------------------------------------------------------------
def test_image_folder_is_read_in_natural_order(tmp_path):
    for t in (1, 2, 10, 3, 11):  # written out of order; "frame10" sorts after "frame3"
        imageio.imwrite(tmp_path / f"frame{t}.png", np.full((8, 10), t * 20, np.uint8))
    (tmp_path / "notes.txt").write_text("not a frame")
    seq = open_sequence(tmp_path)
    assert seq.meta.kind == "images" and len(seq) == 5
    values = seq.frames()[:, 0, 0, 0] * 255
    np.testing.assert_allclose(values, [20, 40, 60, 200, 220], atol=1e-4)
    assert seq.shape == (5, 1, 8, 10)


def test_sixteen_bit_png_uses_the_full_range(tmp_path):
    imageio.imwrite(tmp_path / "a.png", np.full((4, 4), 65535, np.uint16))
    imageio.imwrite(tmp_path / "b.png", np.full((4, 4), 16384, np.uint16))
    seq = open_sequence(tmp_path)
    np.testing.assert_allclose(seq.frames()[:, 0, 0, 0], [1.0, 16384 / 65535], rtol=1e-6)
    assert seq.meta.value_range == (0.0, 65535.0)
    assert seq.to_physical(np.float32(0.5)) == pytest.approx(32767.5)


def test_hko7_png_folder_is_reflectivity_every_six_minutes(tmp_path):
    pixels = np.array([[0, 51], [128, 255]], np.uint8)
    for k, minute in enumerate((0, 6, 12)):
        imageio.imwrite(
            tmp_path / f"RAD09060110{minute:02d}00.png", (pixels + k * (pixels < 250)).astype(np.uint8)
        )
    seq = open_sequence(tmp_path)
    assert seq.meta.units == "dBZ" and seq.meta.value_range == (-10.0, 60.0)
    assert seq.meta.frame_interval_s == pytest.approx(360.0)
    dbz = seq.to_physical(seq.frames(0, 1)[0, 0])
    np.testing.assert_allclose(dbz, hko_pixel_to_dbz(pixels.astype(np.float64)), atol=1e-4)  # 51 -> 4 dBZ
    assert dbz[0, 1] == pytest.approx(4.0, abs=1e-4)


def test_hko7_name_with_an_impossible_time_names_the_file(tmp_path):
    pixels = np.zeros((2, 2), np.uint8)
    imageio.imwrite(tmp_path / "RAD090601105000.png", pixels)
    imageio.imwrite(tmp_path / "RAD090601106000.png", pixels)  # minute 60
    with pytest.raises(DataError, match=r"RAD090601106000\.png: not a valid HKO-7 time stamp"):
        open_sequence(tmp_path)


# -- arrays ------------------------------------------------------------------------------------
def moving_mnist_file(path: Path, frames: int = 20, sequences: int = 5) -> np.ndarray:
    """Moving MNIST's own layout: (T, N, H, W) uint8."""
    data = np.random.default_rng(0).integers(0, 256, (frames, sequences, 16, 16), dtype=np.uint8)
    np.save(path, data)
    return data


def test_npy_in_moving_mnist_layout_picks_one_sequence(tmp_path):
    data = moving_mnist_file(tmp_path / "mnist_test_seq.npy")
    seq = open_sequence(tmp_path / "mnist_test_seq.npy", sequence=3)
    assert len(seq) == 20 and seq.meta.frame_size == (16, 16) and seq.meta.channels == 1
    assert "TNHW" in seq.meta.transforms[0]
    np.testing.assert_allclose(seq.frames(4, 6)[:, 0], data[4:6, 3] / 255.0, rtol=1e-6)
    with pytest.raises(DataError, match="sequence 9 does not exist"):
        open_sequence(tmp_path / "mnist_test_seq.npy", sequence=9)


def test_npy_of_our_generator_layout_and_explicit_layout(tmp_path):
    frames = np.random.default_rng(1).random((2, 7, 1, 12, 12), dtype=np.float32)
    np.save(tmp_path / "gen.npy", frames)
    np.testing.assert_array_equal(open_sequence(tmp_path / "gen.npy", sequence=1).frames(), frames[1])
    np.save(tmp_path / "nthw.npy", frames[:, :, 0])  # (N, T, H, W): not guessable from the shape
    seq = open_sequence(tmp_path / "nthw.npy", layout="NTHW", sequence=1)
    np.testing.assert_array_equal(seq.frames()[:, 0], frames[1, :, 0])


def test_float_frames_saved_as_0_to_255_are_not_clipped(tmp_path):
    frames = np.random.default_rng(6).integers(0, 256, (4, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "f.npy", frames)
    seq = open_sequence(tmp_path / "f.npy")
    np.testing.assert_allclose(seq.frames(), frames / 255.0, rtol=1e-6)
    assert any("read as 0..255" in note for note in seq.meta.transforms)
    assert seq.to_physical(seq.frames(1, 2)) == pytest.approx(frames[1:2])


def test_npz_members_stored_or_compressed(tmp_path):
    data = np.random.default_rng(2).integers(0, 256, (6, 4, 8, 8), dtype=np.uint8)  # TNHW
    np.savez(tmp_path / "stored.npz", clips=data, labels=np.arange(4))
    np.savez_compressed(tmp_path / "packed.npz", clips=data)
    for name in ("stored.npz", "packed.npz"):
        seq = open_sequence(tmp_path / name, sequence=2)
        assert seq.meta.extra["key"] == "clips"
        np.testing.assert_allclose(seq.frames()[:, 0], data[:, 2] / 255.0, rtol=1e-6)
    with pytest.raises(DataError, match="no array named 'nope'"):
        open_sequence(tmp_path / "stored.npz", key="nope")


def test_predrnn_moving_mnist_npz(tmp_path):
    raw = np.random.default_rng(3).random((40, 1, 8, 8), dtype=np.float32)
    clips = np.array([[[0, 10], [20, 10]], [[10, 10], [30, 10]]])  # (input|output, N, [start, length])
    np.savez(tmp_path / "moving-mnist-test.npz", input_raw_data=raw, clips=clips, dims=np.array([[1, 8, 8]]))
    seq = open_sequence(tmp_path / "moving-mnist-test.npz", sequence=1)
    assert len(seq) == 20
    np.testing.assert_array_equal(seq.frames(), raw[20:40])


def test_sevir_style_hdf5_is_sliced_lazily_per_sequence(tmp_path):
    vil = np.random.default_rng(4).integers(0, 256, (3, 16, 16, 12), dtype=np.uint8)  # (N, H, W, T)
    with h5py.File(tmp_path / "sevir.h5", "w") as f:
        f.create_dataset("id", data=np.arange(3))
        f.create_dataset("vil", data=vil, chunks=(1, 16, 16, 1))
    seq = open_sequence(tmp_path / "sevir.h5", sequence=2)
    assert (
        seq.meta.kind == "hdf5" and seq.meta.extra["dataset"] == "vil" and seq.meta.extra["layout"] == "NHWT"
    )
    assert len(seq) == 12
    np.testing.assert_allclose(
        seq.frames(5, 8)[:, 0], vil[2, :, :, 5:8].transpose(2, 0, 1) / 255.0, rtol=1e-6
    )


def test_hdf5_dataset_and_axes_can_be_chosen(tmp_path):
    data = np.random.default_rng(5).random((9, 6, 6, 3), dtype=np.float32)
    with h5py.File(tmp_path / "f.hdf5", "w") as f:
        f.create_dataset("group/frames", data=data)
        f.create_dataset("group/other", data=np.zeros((2, 2, 2)))
    seq = open_sequence(tmp_path / "f.hdf5", dataset="group/frames", layout="THWC")
    np.testing.assert_array_equal(seq.frames(), data.transpose(0, 3, 1, 2))
    with pytest.raises(DataError, match="no dataset 'missing'"):
        open_sequence(tmp_path / "f.hdf5", dataset="missing")


def resident_bytes(path: Path) -> int:
    """How much of a file sits in the page cache (mincore(2) over a fresh read-only mapping)."""
    size = path.stat().st_size
    libc = ctypes.CDLL(None, use_errno=True)
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), size, prot=mmap.PROT_READ) as mapping:
        view = np.frombuffer(mapping, np.uint8)
        pages = (ctypes.c_ubyte * ((size + mmap.PAGESIZE - 1) // mmap.PAGESIZE))()
        if libc.mincore(ctypes.c_void_p(view.ctypes.data), ctypes.c_size_t(size), pages) != 0:
            pytest.skip("mincore(2) is not available here")
        del view
    return sum(page & 1 for page in pages) * mmap.PAGESIZE


def drop_from_page_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def write_big(path: Path) -> None:
    """256 MB of (T, H, W) uint8 frames, frames 1000 and 1001 set to 200, in the file's format."""
    shape = (4096, 256, 256)
    if path.suffix == ".npy":
        big = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
        big[1000:1002] = 200
        big.flush()
    elif path.suffix == ".npz":  # stored (uncompressed) member, written frame block by block
        with (
            zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive,
            archive.open("frames.npy", "w", force_zip64=True) as member,
        ):
            np.lib.format.write_array_header_1_0(
                member, {"descr": "|u1", "fortran_order": False, "shape": shape}
            )
            for start in range(0, shape[0], 512):
                block = np.zeros((512, *shape[1:]), np.uint8)
                block[max(0, 1000 - start) : max(0, 1002 - start)] = 200
                member.write(block.tobytes())
    else:
        with h5py.File(path, "w") as f:
            frames = f.create_dataset("frames", shape=shape, dtype=np.uint8, chunks=(1, 256, 256))
            for start in range(0, shape[0], 512):
                block = np.zeros((512, *shape[1:]), np.uint8)
                block[max(0, 1000 - start) : max(0, 1002 - start)] = 200
                frames[start : start + 512] = block


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="needs posix_fadvise and mincore (Linux)")
@pytest.mark.parametrize("name", ["big.npy", "big.npz", "big.h5"])
def test_a_large_file_is_not_read_whole(tmp_path, name):
    path = tmp_path / name
    write_big(path)
    drop_from_page_cache(path)
    if resident_bytes(path) > 0:
        pytest.skip("this filesystem keeps files in memory (tmpfs?): cannot see what is read")
    seq = open_sequence(path)
    assert len(seq) == 4096
    frames = seq.frames(1000, 1002)  # two 64 KB frames
    np.testing.assert_allclose(frames, 200 / 255.0, rtol=1e-6)
    assert seq.frames(999, 1000).max() == 0.0
    # The kernel reads ahead a few MB around what is touched; reading it all would load 256 MB.
    loaded = resident_bytes(path)
    assert loaded < path.stat().st_size // 10, f"{loaded} bytes of {path.stat().st_size} were read"


def test_a_long_video_knows_its_length_and_seeks(tmp_path):
    video = np.zeros((300, 16, 16, 3), np.uint8)
    video[:, :8, :8] = np.arange(300)[:, None, None, None] * 255 // 299  # brightness counts frames
    imageio.mimwrite(tmp_path / "long.mp4", video, fps=25, macro_block_size=16)
    seq = open_sequence(tmp_path / "long.mp4")
    assert len(seq) == 300
    late = seq.frames(280, 282)[:, 0, 2, 2] * 255
    np.testing.assert_allclose(late, [280 * 255 // 299, 281 * 255 // 299], atol=4)
    early = seq.frames(10, 11)[0, 0, 2, 2] * 255
    assert early == pytest.approx(10 * 255 // 299, abs=4)


# -- ODIM radar --------------------------------------------------------------------------------
def write_odim(path: Path, raw_frames: list[np.ndarray], times: list[str], quantity: str = "DBZH") -> None:
    """An ODIM_H5 composite: gain/offset in datasetN/data1/what, date at the root."""
    with h5py.File(path, "w") as f:
        f.attrs["Conventions"] = np.bytes_("ODIM_H5/V2_2")
        what = f.create_group("what")
        what.attrs["object"] = np.bytes_("COMP")
        what.attrs["date"] = np.bytes_("20240501")
        for k, (raw, time) in enumerate(zip(raw_frames, times, strict=True), start=1):
            ds = f.create_group(f"dataset{k}")
            ds.create_group("what").attrs.update(
                {"startdate": np.bytes_("20240501"), "starttime": np.bytes_(time)}
            )
            data = ds.create_group("data1")
            data.create_dataset("data", data=raw)
            data.create_group("what").attrs.update(
                {
                    "quantity": np.bytes_(quantity),
                    "gain": 0.5,
                    "offset": -32.0,
                    "nodata": 255.0,
                    "undetect": 0.0,
                }
            )


def test_odim_file_with_many_datasets_decodes_gain_offset_nodata(tmp_path):
    raw = np.array([[0, 84, 124], [144, 255, 104]], np.uint8)  # 0: undetect, 255: nodata
    write_odim(tmp_path / "comp.h5", [raw, raw + 2, raw], ["101000", "100000", "100500"])
    seq = open_sequence(tmp_path / "comp.h5")
    assert seq.meta.kind == "odim" and seq.meta.units == "dBZ" and seq.meta.extra["quantity"] == "DBZH"
    assert len(seq) == 3 and seq.meta.frame_interval_s == pytest.approx(300.0)
    dbz = seq.to_physical(seq.frames())  # (3, 1, 2, 3), sorted by time: raw + 2, raw, raw
    # raw 84 -> 84 * 0.5 - 32 = 10 dBZ; 124 -> 30; 144 -> 40; 104 -> 20; flags -> no echo (-10).
    np.testing.assert_allclose(dbz[1, 0], [[-10, 10, 30], [40, -10, 20]], atol=1e-4)
    np.testing.assert_allclose(dbz[0, 0, 0, 1], 11.0, atol=1e-4)


def test_folder_of_odim_files_one_per_time_and_rain_rate(tmp_path):
    raw = np.array([[0, 64], [96, 128]], np.uint8)  # rain rate = raw * 0.5 - 32 -> 0, 0, 16, 32 mm/h
    for minute in (10, 0, 5):
        write_odim(tmp_path / f"T_{minute:02d}.h5", [raw + minute], [f"10{minute:02d}00"], quantity="RATE")
    seq = open_sequence(tmp_path)
    assert seq.meta.units == "mm/h" and len(seq) == 3 and seq.meta.frame_interval_s == pytest.approx(300.0)
    first = seq.frames(0, 1)[0, 0]
    np.testing.assert_allclose(first, rain_rate_to_unit(np.array([[0.0, 0.0], [16.0, 32.0]])), atol=1e-6)
    np.testing.assert_allclose(seq.to_physical(first)[1], [16.0, 32.0], rtol=1e-4)
    with pytest.raises(DataError, match="no quantity 'DBZH'"):
        open_sequence(tmp_path, quantity="DBZH")


# -- fitting to a model ------------------------------------------------------------------------
def test_fit_to_resizes_or_crops_and_says_so():
    frames = np.zeros((2, 1, 40, 60), np.float32)
    frames[:, :, 10:30, 20:40] = 1.0
    seq = from_array(frames, source="demo")
    resized = fit_to(seq, 20, 30)
    assert resized.frames().shape == (2, 1, 20, 30) and resized.meta.frame_size == (20, 30)
    assert resized.meta.original_size == (40, 60) and resized.meta.transforms == ("resized 40x60 -> 20x30",)
    assert resized.frames()[0, 0, 10, 15] == pytest.approx(1.0) and resized.frames()[0, 0, 0, 0] == 0.0
    cropped = fit_to(seq, 20, 20, mode="crop")
    np.testing.assert_array_equal(cropped.frames(), frames[:, :, 10:30, 20:40])
    assert "centre-cropped 40x60 -> 20x20" in cropped.meta.transforms[0]
    assert "aspect ratio changed" in fit_to(seq, 32, 32).meta.transforms[0]
    assert fit_to(seq, 40, 60) is seq
    with pytest.raises(ShapeError, match="demo: cannot crop"):
        fit_to(seq, 64, 64, mode="crop")


# -- bad input ---------------------------------------------------------------------------------
def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def test_missing_and_unknown_files_are_named(tmp_path):
    with pytest.raises(DataError, match=r"nothere\.mp4: no such file"):
        open_sequence(tmp_path / "nothere.mp4")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"notes.txt: unknown kind of file \.txt"):
        open_sequence(tmp_path / "notes.txt")
    with pytest.raises(DataError, match="do not apply to video"):
        imageio.mimwrite(tmp_path / "v.gif", moving_square(2, 8, 8))
        open_sequence(tmp_path / "v.gif", dataset="x")


def test_truncated_or_corrupt_files_of_every_kind_name_the_file(tmp_path):
    imageio.mimwrite(tmp_path / "a.mp4", moving_square(8), fps=5, macro_block_size=16)
    truncate(tmp_path / "a.mp4")
    (tmp_path / "b.avi").write_bytes(b"RIFF not really a video" * 10)
    imageio.mimwrite(tmp_path / "c.gif", moving_square(4))
    truncate(tmp_path / "c.gif", 0.05)
    np.save(tmp_path / "d.npy", np.zeros((4, 8, 8), np.uint8))
    truncate(tmp_path / "d.npy", 0.7)
    np.savez(tmp_path / "e.npz", x=np.zeros((4, 8, 8)))
    truncate(tmp_path / "e.npz")
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f.create_dataset("x", data=np.zeros((4, 64, 64)))
    truncate(tmp_path / "f.h5")
    write_odim(tmp_path / "g.h5", [np.zeros((64, 64), np.uint8)], ["100000"])
    truncate(tmp_path / "g.h5")
    for name in ("a.mp4", "b.avi", "c.gif", "d.npy", "e.npz", "f.h5", "g.h5"):
        with pytest.raises(DataError, match=rf"{name}: "):
            open_sequence(tmp_path / name).frames()


def scramble(path: Path, start: int, count: int) -> Path:
    data = bytearray(path.read_bytes())
    for i in range(start, min(start + count, len(data))):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    return path


def test_damaged_headers_and_compressed_streams_name_the_file(tmp_path):
    np.save(tmp_path / "header.npy", np.zeros((4, 8, 8)))
    scramble(tmp_path / "header.npy", 12, 30)  # inside the .npy header's dict
    np.savez_compressed(tmp_path / "deflate.npz", x=np.random.default_rng(0).random((4, 16, 16)))
    scramble(tmp_path / "deflate.npz", 200, 400)  # inside the deflate stream
    with h5py.File(tmp_path / "gzip.h5", "w") as f:
        f.create_dataset(
            "x", data=np.random.default_rng(0).random((4, 64, 64)), compression="gzip", chunks=(1, 64, 64)
        )
    scramble(tmp_path / "gzip.h5", (tmp_path / "gzip.h5").stat().st_size // 2, 2000)  # inside a chunk
    for name in ("header.npy", "deflate.npz", "gzip.h5"):
        with pytest.raises(DataError, match=rf"{name}: "):
            open_sequence(tmp_path / name).frames()


def test_a_corrupt_image_in_a_folder_is_named_when_read(tmp_path):
    for t in range(3):
        imageio.imwrite(tmp_path / f"f{t}.png", np.full((16, 16), 60 * t, np.uint8))
    truncate(tmp_path / "f2.png", 0.4)
    seq = open_sequence(tmp_path)
    assert seq.frames(0, 2).shape == (2, 1, 16, 16)
    with pytest.raises(DataError, match=r"f2\.png: cannot decode"):
        seq.frames(2, 3)
    imageio.imwrite(tmp_path / "f2.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match=r"f2\.png: image is 8x8"):
        seq.frames(2, 3)


def test_zip_that_is_not_numpy(tmp_path):
    with zipfile.ZipFile(tmp_path / "x.npz", "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(DataError, match=r"x\.npz"):
        open_sequence(tmp_path / "x.npz")
