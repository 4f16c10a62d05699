"""Models saved here and loaded in Kaggle's image: the Keras and TensorFlow versions that saved a model, recorded
beside it (`<file>.versions.json`), checked when it is loaded and before a push attaches it.

Kaggle's image takes TensorFlow and Keras from its Colab base as they are (Kaggle/docker-python, Dockerfile.tmpl:
`pip freeze | grep -E 'tensorflow|keras|torch|jax' > /colab_requirements.txt`, then installs that list), so its
versions are whatever Colab ships, which may be older than the kit's TensorFlow 2.21. A Keras 3 file saved by a newer
minor version may name layer arguments an older one does not know. The versions a kernel ran with come back in its
output (headstart-run.json), which is how the kit knows Kaggle's image before the next push.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from tasks.errors import ConfigError
from tasks.files import atomic_write_json

VERSIONS_SUFFIX = ".versions.json"
LIBRARIES = ("keras", "tensorflow")


def running_versions() -> dict:
    from importlib import metadata

    found = {}
    for library in LIBRARIES:
        try:
            found[library] = metadata.version(library)
        except metadata.PackageNotFoundError:
            found[library] = None
    return found


def sidecar(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + VERSIONS_SUFFIX)


def record_versions(path: Path, versions: dict | None = None) -> Path:
    """Write the versions that saved the model at `path` beside it (the running ones by default)."""
    return atomic_write_json(sidecar(path), versions or running_versions())


def saved_versions(path: Path) -> dict:
    """The versions that saved a model: its sidecar, else what a .keras file's own metadata.json says (Keras only)."""
    path = Path(path)
    if sidecar(path).is_file():
        return json.loads(sidecar(path).read_text())
    if path.suffix == ".keras" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zipped, zipped.open("metadata.json") as stream:
            return {"keras": json.load(stream).get("keras_version"), "tensorflow": None}
    return {}


def _major_minor(version: str) -> tuple[int, int]:
    parts = [int("".join(character for character in part if character.isdigit()) or 0)
             for part in version.split(".")[:2]]
    return (parts + [0])[0], (parts + [0, 0])[1]


def incompatibility(saved: dict, loading: dict) -> str | None:
    """Why a model saved with `saved` versions would not load with `loading` ones (another major version, or an
    older minor one), naming both; None when it would (or when a version is unknown)."""
    for library in LIBRARIES:
        was, now = saved.get(library), loading.get(library)
        if not was or not now:
            continue
        if _major_minor(now)[0] != _major_minor(was)[0] or _major_minor(now) < _major_minor(was):
            return f"saved with {library} {was}, to be loaded with {library} {now}"
    return None


def describe(versions: dict) -> str:
    return ", ".join(f"{library} {versions.get(library) or 'unknown'}" for library in LIBRARIES)


def load_model(path: Path):
    """A Keras model file, loaded once the versions that saved it are checked against this environment's: a
    ConfigError naming both when they would not match (rather than Keras' error about an unknown argument)."""
    import keras

    problem = incompatibility(saved_versions(path), running_versions())
    if problem:
        raise ConfigError(f"{path}: {problem} ({describe(saved_versions(path))} saved it; this environment has "
                          f"{describe(running_versions())}): save it again with these versions, or load it where "
                          "they match")
    return keras.saving.load_model(path, compile=False)


def kaggle_image_versions(kernels_root: Path) -> tuple[dict, Path] | None:
    """The TensorFlow and Keras versions Kaggle's image ran the newest collected kernel with (its
    headstart-run.json), and that file; None before any kernel has come back."""
    runs = sorted(Path(kernels_root).glob("*/output/*/headstart-run.json"), key=lambda path: path.stat().st_mtime)
    for path in reversed(runs):
        versions = {library: json.loads(path.read_text()).get("versions", {}).get(library) for library in LIBRARIES}
        if any(versions.values()):
            return versions, path
    return None


def check_attachable(models: dict[str, dict], kernels_root: Path) -> str:
    """Refuse (ConfigError, both versions named) models a push attaches that Kaggle's image, as last seen, would
    not load; a line saying what was checked against what (or that Kaggle's versions are not known yet)."""
    seen = kaggle_image_versions(kernels_root)
    if seen is None:
        return ("Kaggle's TensorFlow and Keras versions are not known here yet (no kernel has come back): the "
                "kernel checks the attached models when it loads them")
    image, source = seen
    for name, versions in models.items():
        problem = incompatibility(versions, image)
        if problem:
            raise ConfigError(f"{name}: {problem}: Kaggle's image ran {describe(image)} (as {source} records), and "
                              f"this model was saved with {describe(versions)}; it would not load there: save it "
                              "with the image's versions, or push without it")
    return f"attached models checked against Kaggle's image ({describe(image)}, as {source} records)"
