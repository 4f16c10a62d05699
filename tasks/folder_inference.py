"""Where a competition's images are, inferred from its files: the train and test folders (unpacked from nested
archives), the folders test images are spread over, and the images' extension and shape. Each function takes the
spec inference under way (tasks/spec_inference.py), for its files, the keys given and the error naming a key."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image

from tasks.competitions import IMAGE_EXTENSIONS
from tasks.layouts import unpack_folder_archive

ARCHIVE_SUFFIXES = (".7z", ".zip")
PROBE = 100  # test ids looked up (first and last) to find which folders hold test images


def image_folder(inference, split: str, first_ids: list[str]) -> tuple[str, str | None]:
    """The split's image folder (`train*`), and the archive it came in, unpacked here if need be; of several,
    the one holding the first id."""
    key = f"{split}_images"
    candidates = unpacked_folders(inference, split)
    if len(candidates) > 1 and first_ids and key not in inference.given:
        candidates = [pair for pair in candidates if holds(inference.raw_dir / pair[0], first_ids[0]) is not None]
    chosen = inference.choose(key, [folder for folder, _ in candidates], f"the folder of {split} images")
    return chosen, dict(candidates).get(chosen)


def unpacked_folders(inference, split: str) -> list[tuple[str, str | None]]:
    """(folder, archive) of every `<split>*` image folder, each archive unpacked (a nested train.zip, test.7z)."""
    raw = inference.raw_dir
    folders = {name: None for name in inference.files if name.lower().startswith(split) and (raw / name).is_dir()}
    for name in inference.files:
        if name.lower().startswith(split) and name.endswith(ARCHIVE_SUFFIXES):
            stem = name[: -len(Path(name).suffix)]
            if stem not in folders or folders[stem] is None and not (raw / stem).is_dir():
                unpack_folder_archive(raw / name, raw, stem)
            folders[stem] = name
    return sorted(folders.items())


def test_folders(inference, values: dict) -> list[tuple[str, str | None]]:
    """The test image folders: the one holding the sample's first id, then any other `test*` folder holding some
    of its ids (planet's test-jpg-additional)."""
    if "test_images" in inference.given:
        return [(inference.given["test_images"], inference.given.get("test_archive")),
                *((folder, None) for folder in inference.given.get("extra_test_images", ()))]
    ids = pd.read_csv(inference.raw_dir / values["sample_submission"], usecols=[0], dtype=str).iloc[:, 0]
    probe = list(ids.iloc[:PROBE]) + list(ids.iloc[-PROBE:])
    candidates = unpacked_folders(inference, "test")
    holding = [(pair, sum(holds(inference.raw_dir / pair[0], image_id) is not None for image_id in probe))
               for pair in candidates]
    first = [pair for pair in candidates if holds(inference.raw_dir / pair[0], probe[0]) is not None]
    if len(candidates) == 1:
        return candidates
    if len(first) != 1:
        found = ", ".join(folder for folder, _ in candidates) or "none"
        raise inference.fail(f"could not tell the folder of test images (found {found}; "
                             f"{len(first)} hold the sample's first id {probe[0]!r})", "test_images")
    return first + [pair for pair, count in holding if count and pair != first[0]]


def holds(folder: Path, image_id: str) -> str | None:
    """The extension with which `folder` holds the image of `image_id` ('' when the id is the file name)."""
    if not folder.is_dir():
        return None
    if (folder / image_id).is_file():
        return ""
    return next((suffix for suffix in (*IMAGE_EXTENSIONS, *(s.upper() for s in IMAGE_EXTENSIONS))
                 if (folder / f"{image_id}{suffix}").is_file()), None)


def first_image(inference, folder: str, image_id: str, given: str | None = None,
                 what: str = "training") -> tuple[str, tuple[int, int, int]]:
    """The image files' extension (from the first id's file) and that image's shape."""
    directory = inference.raw_dir / folder
    given = inference.given.get("image_extension") if given is None else given
    extension = given if given is not None and (directory / f"{image_id}{given}").is_file() else \
        holds(directory, image_id) if given is None else None
    if extension is None:
        raise inference.fail(f"no image file for the first {what} id {image_id!r} in {folder}/", "image_extension")
    path = directory / f"{image_id}{extension}"
    try:
        with Image.open(path) as image:
            channels = 1 if image.mode in ("L", "I", "I;16", "1") else 3
            shape = (image.height, image.width, channels)
    except Exception:  # PIL raises many types for broken files
        raise inference.fail(f"{path.name} in {folder}/ is not a readable image", "image_extension") from None
    return extension, shape
