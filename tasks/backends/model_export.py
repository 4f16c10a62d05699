"""Models as a Kaggle dataset for a kernel with no internet: the backbones a run uses (their weights files, or a
`file:` model), each with the versions that saved it beside it and in a manifest (headstart-models.json), published
as your dataset `<you>/headstart-models-<competition>` pinned to the version uploaded. What each export holds is
recorded here (<kernel_dir>/exports.json), so that a push attaching it checks it against Kaggle's image first.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tasks.backends.kernels import BUNDLE_LICENSE, MAX_SLUG, kernel_owner, publish_bundle
from tasks.errors import ConfigError
from tasks.files import atomic_write_json, sha256_text
from tasks.saved_models import record_versions, running_versions, saved_versions

MANIFEST = "headstart-models.json"
EXPORTS = "exports.json"


def export_slug(competition: str) -> str:
    slug = f"headstart-models-{competition}"
    return slug if len(slug) <= MAX_SLUG else f"headstart-models-{sha256_text(competition)[:12]}"


def backbone_files(names: tuple[str, ...], search_dirs: list[Path]) -> dict[str, Path]:
    """Each backbone's file: a `file:` model, or a registered backbone's weights found on disk (never downloaded)."""
    from tasks.backbones import backbone_spec, find_weights, missing_weights_message

    files = {}
    for name in names:
        spec = backbone_spec(name)
        path = Path(spec.weights_file) if spec.builder == "file" else find_weights(spec, search_dirs)
        if path is None or not path.is_file():
            raise ConfigError(missing_weights_message(spec, search_dirs))
        files[path.name] = path
    return files


def build_export(destination: Path, owner: str, competition: str, files: dict[str, Path]) -> dict:
    """A dataset folder of the files, each with its versions beside it, the manifest and dataset-metadata.json; the
    manifest (file name -> versions)."""
    shutil.rmtree(destination, ignore_errors=True)
    destination.mkdir(parents=True)
    manifest = {}
    for name, path in files.items():
        shutil.copyfile(path, destination / name)
        versions = saved_versions(path) or running_versions()  # weights files Keras wrote here: these versions
        record_versions(destination / name, versions)
        manifest[name] = versions
    atomic_write_json(destination / MANIFEST, manifest)
    atomic_write_json(destination / "dataset-metadata.json", {
        "id": f"{owner}/{export_slug(competition)}", "title": f"headstart models {competition}"[:50],
        "licenses": [{"name": BUNDLE_LICENSE}], "keywords": []})
    return manifest


def export_models(config, backend, kernel_dir: Path, files: dict[str, Path], poll_interval: float = 5.0) -> dict:
    """Publish the files as the competition's models dataset; the record kept in <kernel_dir>/exports.json."""
    api, kernel_dir = backend.api, Path(kernel_dir)
    owner = kernel_owner(api)
    ref = f"{owner}/{export_slug(config.competition)}"
    manifest = build_export(kernel_dir / "models", owner, config.competition, files)
    pinned = publish_bundle(api, kernel_dir / "models", ref, poll_interval)
    exports = json.loads((kernel_dir / EXPORTS).read_text()) if (kernel_dir / EXPORTS).is_file() else {}
    record = {"dataset": pinned, "models": manifest}
    atomic_write_json(kernel_dir / EXPORTS, {**exports, ref: record})
    return record


def attached_models(kernel_dir: Path, datasets: tuple[str, ...]) -> dict[str, dict]:
    """The models in the attached datasets that were exported from here (`owner/slug[/N]`): name -> versions."""
    path = Path(kernel_dir) / EXPORTS
    exports = json.loads(path.read_text()) if path.is_file() else {}
    found = {}
    for dataset in datasets:
        record = exports.get("/".join(dataset.split("/")[:2]))
        for name, versions in (record or {}).get("models", {}).items():
            found[f"{dataset}: {name}"] = versions
    return found
