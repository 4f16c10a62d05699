"""A competition's files loaded by layout into checked arrays and image paths, with one clear error per problem.

Layouts (see CompetitionSpec): a pixel CSV; an id/label CSV with image folders; one folder per class; labels in
file names. Test ids and their order come from the sample submission, and a test image may lie in any of the
spec's test folders. Image folders shipped as archives (train.zip, test.7z) are unpacked first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from tasks.archives import unpack_archive, zip_entries
from tasks.competitions import (
    CompetitionSpec,
    check_unique,
    encode_labels,
    encode_targets,
    plain,
    read_csv,
    read_pixels,
    read_test_ids,
    shown_names,
)
from tasks.errors import CompetitionDataError

GREY_MODES = ("L", "LA", "I", "I;16", "1")


@dataclass(frozen=True)
class CompetitionData:
    """A competition's training and test examples, checked against its spec. `train_labels`: class indices (N,),
    or for a multi-label competition a 0/1 tag matrix (N, T)."""

    train_ids: np.ndarray
    train_labels: np.ndarray
    test_ids: np.ndarray
    train_pixels: np.ndarray | None = None
    test_pixels: np.ndarray | None = None
    train_images: tuple[str, ...] | None = None
    test_images: tuple[str, ...] | None = None
    geometry: dict | None = None  # image files: channels, the most common height and width, same_size

    @property
    def same_size(self) -> bool:
        """Every image has the same height and width."""
        return self.geometry is None or self.geometry["same_size"]


def load_competition(spec: CompetitionSpec, raw_dir: Path) -> CompetitionData:
    """Read and check a competition's unpacked files; raises CompetitionDataError on bad input."""
    if spec.layout == "pixels_csv":
        return load_pixels_csv(spec, raw_dir)
    train_ids, train_labels, train_files, source = _train_examples(spec, raw_dir)
    test_ids = read_test_ids(spec, raw_dir)
    test_files = _image_files([raw_dir / folder for folder in (spec.test_images, *spec.extra_test_images)], test_ids,
                              spec.image_extension, raw_dir / spec.sample_submission)
    train_geometry, test_geometry = _checked_images(train_files, train_ids), _checked_images(test_files, test_ids)
    return CompetitionData(train_ids=train_ids, train_labels=train_labels, test_ids=test_ids,
                           train_images=tuple(map(str, train_files)), test_images=tuple(map(str, test_files)),
                           geometry=image_summary(train_geometry + test_geometry))


def _train_examples(spec: CompetitionSpec, raw_dir: Path) -> tuple[np.ndarray, np.ndarray, list[Path], Path]:
    """Training ids, targets and image files by layout, and the file the ids come from."""
    if spec.layout in ("image_folder", "image_csv"):
        labels_path = raw_dir / spec.train_csv
        labels = read_csv(labels_path, [spec.id_column, spec.label_column])
        if labels.empty:
            raise CompetitionDataError(f"{labels_path}: no training rows")
        check_unique(labels[spec.id_column], labels_path, spec.id_column)
        ids = labels[spec.id_column].to_numpy(dtype=str)
        files = _image_files([raw_dir / spec.train_images], ids, spec.image_extension, labels_path)
        return ids, encode_targets(labels[spec.label_column], spec, labels_path, spec.label_column), files, labels_path
    folder = raw_dir / spec.train_images
    found = _class_folder_files(folder) if spec.layout == "class_folders" else _labelled_file_names(folder)
    if not found:
        raise CompetitionDataError(f"{folder}: no training images")
    files = [path for _, path in found]
    ids = pd.Series([_file_id(path, spec.image_extension) for path in files])
    check_unique(ids, folder, "file name")
    unknown = next(((label, path) for label, path in found if label not in spec.class_names), None)
    if unknown:
        where = "its folder's name" if spec.layout == "class_folders" else "its file name"
        raise CompetitionDataError(f"{unknown[1]}: label {unknown[0]!r} (from {where}) is not one of the classes "
                                   f"{shown_names(spec.class_names)}")
    labels = encode_labels(pd.Series([label for label, _ in found]), spec.class_names, folder, "label")
    return ids.to_numpy(dtype=str), labels, files, folder


def _class_folder_files(folder: Path) -> list[tuple[str, Path]]:
    """(class, file) of every image under folder/<class>/, sorted; a file beside the class folders is an error."""
    if not folder.is_dir():
        raise CompetitionDataError(f"{folder}: image folder not found")
    found = []
    for entry in sorted(path for path in folder.iterdir() if not path.name.startswith(".")):
        if not entry.is_dir():
            raise CompetitionDataError(f"{entry}: a file beside the class folders; expected {folder.name}/<class "
                                       f"name>/<image>, one folder per class")
        found += [(entry.name, path) for path in sorted(entry.iterdir()) if path.is_file()
                  and not path.name.startswith(".")]
    return found


def _labelled_file_names(folder: Path) -> list[tuple[str, Path]]:
    """(label, file) of every image in the folder, the label being the file name up to its first dot."""
    if not folder.is_dir():
        raise CompetitionDataError(f"{folder}: image folder not found")
    return [(path.name.split(".")[0], path) for path in sorted(folder.iterdir())
            if path.is_file() and not path.name.startswith(".")]


def _file_id(path: Path, extension: str) -> str:
    """A file's id: its name, less the spec's image extension."""
    if extension and not path.name.endswith(extension):
        raise CompetitionDataError(f"{path}: not a {extension} file; the spec's image_extension is {extension!r}")
    return path.name[: len(path.name) - len(extension)] if extension else path.name


def _image_files(folders: list[Path], ids: np.ndarray, extension: str, source: Path) -> list[Path]:
    """The image file of every id, in whichever of the folders holds it, checked to stay inside it."""
    for folder in folders:
        if not folder.is_dir():
            raise CompetitionDataError(f"{folder}: image folder not found")
    insides, files = [folder.resolve() for folder in folders], []
    for row, image_id in enumerate(map(str, ids)):
        candidates = [folder / f"{image_id}{extension}" for folder in folders]
        if Path(image_id).is_absolute() or not all(
                path.resolve().is_relative_to(inside) for path, inside in zip(candidates, insides)):
            raise CompetitionDataError(f"{source}: row {row + 2}: id {image_id!r} names a file outside "
                                       f"{folders[0]}; ids are file names inside the image folder")
        found = [path for path in candidates if path.is_file()]
        if not found:
            where = f" (looked in {', '.join(folder.name + '/' for folder in folders)})" if len(folders) > 1 else ""
            raise CompetitionDataError(f"{candidates[0]}: missing image for id {image_id!r}{where}")
        if len(found) > 1:
            raise CompetitionDataError(f"{source}: row {row + 2}: id {image_id!r} has an image in both "
                                       f"{found[0].parent.name}/ and {found[1].parent.name}/; expected one")
        files.append(found[0])
    return files


def _checked_images(files: list[Path], ids: np.ndarray) -> list:
    """Every image's (width, height, mode), each file checked to decode."""
    geometries = []
    for path, image_id in zip(files, ids):
        try:
            with Image.open(path) as image:
                geometries.append((*image.size, image.mode))
                image.verify()  # checks the file's structure and checksums without decoding every pixel
        except Exception as error:  # PIL raises many types for broken files
            raise CompetitionDataError(f"{path}: undecodable image for id {plain(image_id)} ({error})") from None
    return geometries


def image_summary(geometries: list) -> dict:
    """Channels from every image (colour when any image is colour: a grey first image must not make a colour
    competition grey) and the most common size, which images of other sizes are resized to."""
    sizes = pd.Series([(width, height) for width, height, _ in geometries]).value_counts()
    width, height = sizes.index[0]
    return {"channels": 1 if all(mode in GREY_MODES for *_, mode in geometries) else 3,
            "image_height": int(height), "image_width": int(width), "same_size": len(sizes) == 1}


def load_pixels_csv(spec: CompetitionSpec, raw_dir: Path) -> CompetitionData:
    """A labelled pixel CSV (and any extra labelled ones the spec asks for) and the test CSV, in the sample's order."""
    train_ids, train_labels, train_pixels = [], [], []
    for number, name in enumerate((spec.train_csv, *spec.extra_train_csvs)):
        ids, labels, pixels = _labelled_pixels(spec, raw_dir / name, prefix="" if number == 0 else f"{name}:")
        train_ids.append(ids), train_labels.append(labels), train_pixels.append(pixels)
    test_path, test_ids = raw_dir / spec.test_csv, read_test_ids(spec, raw_dir)
    test = read_csv(test_path, [spec.test_id_column] if spec.test_id_column else [], text_only=False)
    if test.empty:
        raise CompetitionDataError(f"{test_path}: empty test set: no rows")
    if spec.test_id_column:
        test = _in_sample_order(test, test_ids, test_path, spec)
    elif len(test) != len(test_ids):
        raise CompetitionDataError(f"{test_path}: {len(test)} rows, but {spec.sample_submission} "
                                   f"has {len(test_ids)} ids; expected one row per id")
    return CompetitionData(train_ids=np.concatenate(train_ids), train_labels=np.concatenate(train_labels),
                           test_ids=test_ids, train_pixels=np.concatenate(train_pixels),
                           test_pixels=read_pixels(test_path, test, spec))


def _labelled_pixels(spec: CompetitionSpec, path: Path, prefix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frame = read_csv(path, [spec.label_column] + ([spec.id_column] if spec.id_column else []), text_only=False)
    if frame.empty:
        raise CompetitionDataError(f"{path}: no training rows")
    ids = (frame[spec.id_column].to_numpy(dtype=str) if spec.id_column and not prefix
           else np.char.add(prefix, np.arange(1, len(frame) + 1).astype(str)))
    return ids, encode_targets(frame[spec.label_column], spec, path, spec.label_column), read_pixels(path, frame, spec)


def _in_sample_order(test: pd.DataFrame, test_ids: np.ndarray, path: Path, spec: CompetitionSpec) -> pd.DataFrame:
    """The test CSV's rows in the sample submission's order, matched by its id column."""
    column = spec.test_id_column
    ids = test[column].astype(str)
    check_unique(ids, path, column)
    unknown = ~ids.isin(set(test_ids))
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise CompetitionDataError(f"{path}: row {row + 2}, column {column!r}: id {ids.iloc[row]!r} is not in "
                                   f"{spec.sample_submission}")
    missing = [image_id for image_id in test_ids if image_id not in set(ids)]
    if missing:
        raise CompetitionDataError(f"{path}: column {column!r}: {len(missing)} of {spec.sample_submission}'s ids "
                                   f"have no row, the first {missing[0]!r}")
    return test.set_index(ids.to_numpy()).loc[test_ids].reset_index(drop=True)


def unpack_image_archives(spec: CompetitionSpec, raw_dir: Path) -> None:
    """Unpack each image folder that is not there yet from its archive (the spec's, or <folder>.zip / .7z)."""
    named = {spec.train_images: spec.train_archive, spec.test_images: spec.test_archive}
    for folder in (spec.train_images, spec.test_images, *spec.extra_test_images):
        if not folder or (raw_dir / folder).is_dir():
            continue
        archives = [named.get(folder)] + [f"{folder}{suffix}" for suffix in (".zip", ".7z")]
        archive = next((name for name in archives if name and (raw_dir / name).is_file()), None)
        if archive:
            unpack_folder_archive(raw_dir / archive, raw_dir, folder)


def unpack_folder_archive(archive: Path, raw_dir: Path, folder: str) -> Path:
    """Unpack an archive of one image folder: into raw_dir when its entries lie under `folder/` (train.zip holding
    train/1.jpg), else into raw_dir/folder (train.zip holding 1.jpg)."""
    if archive.suffix == ".zip":
        try:
            names = [entry.name for entry in zip_entries(archive)]
        except Exception as error:  # zipfile raises many types for a broken header
            raise CompetitionDataError(f"{archive}: cannot unpack ({error})") from None
        if not all(name.startswith(f"{folder}/") for name in names):
            return unpack_archive(archive, raw_dir / folder)
    return unpack_archive(archive, raw_dir)

