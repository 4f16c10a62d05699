"""Kaggle Models on a hosted competition, as far as a kernel's `model_sources` needs them: made with the unmodified
CLI (`kaggle models create`, `kaggle models instances create`, `kaggle models instances versions create`), read
by their owner or by anyone when public, and mounted where Kaggle mounts them:
`/kaggle/input/models/<owner>/<model>/<framework>/<variation>/<version>/` (the layout kagglehub caches them in, as
Kaggle/docker-python's tests/data/kagglehub/models/keras/bert/keras/bert_tiny_en_uncased/3/ shows). A source that
names no model this user may read is reported in the push's invalidModelSources, as Kaggle does.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path

from kagglesdk.models.types.model_api_service import ApiCreateModelResponse, ApiModel, ApiModelInstance
from kagglesdk.models.types.model_enums import ModelFramework

from tasks.archives import unpack_archive
from tasks.files import atomic_write_json
from tasks.host.common import OWNER, HostError, may_read, number, require_name
from tasks.host.rpc import make

MODELS = "models.ModelApiService/"


def framework_key(framework) -> str:
    """A framework as one folder name, whatever its spelling: MODEL_FRAMEWORK_TENSOR_FLOW_2, tensorFlow2 and
    tensorflow2 are all `tensorflow2`."""
    name = getattr(framework, "name", str(framework)).removeprefix("MODEL_FRAMEWORK_")
    return name.replace("_", "").lower()


class ModelStore:
    """models/<owner>/<model>/: model.json (id, privacy, title) and <framework>/<variation>/: instance.json and
    <version>/files/."""

    def __init__(self, host):
        self.host = host

    def base(self, owner: str, model: str) -> Path:
        require_name("owner", owner, OWNER)
        require_name("model slug", model)
        return self.host.store / "models" / owner / model

    def record(self, owner: str, model: str) -> dict | None:
        path = self.base(owner, model) / "model.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def _readable(self, user: str, owner: str, model: str) -> dict:
        record = self.record(owner, model)
        if record is None:
            raise HostError(404, f"Model {owner}/{model} not found")
        if not may_read(user, owner, record.get("isPrivate", True)):
            raise HostError(403, f"Permission 'models.get' was denied for {owner}/{model}")
        return record

    def instance_dir(self, owner: str, model: str, framework, variation: str) -> Path:
        require_name("instance slug", variation)
        return self.base(owner, model) / framework_key(framework) / variation

    def versions(self, folder: Path) -> list[int]:
        return sorted(number(path.name) for path in folder.glob("*") if number(path.name) is not None)

    def mountable(self, user: str, ref: str) -> bool:
        """Whether `owner/model/framework/variation/version` exists and this user's kernel may have it mounted."""
        parts = ref.split("/")
        if len(parts) != 5 or number(parts[4]) is None:
            return False
        try:
            self._readable(user, parts[0], parts[1])
            folder = self.instance_dir(parts[0], parts[1], parts[2], parts[3])
        except HostError:
            return False
        return number(parts[4]) in self.versions(folder)

    def mount(self, ref: str, models_root: Path) -> None:
        """Copy a version's files to models/<owner>/<model>/<framework>/<variation>/<version>/, zips unpacked."""
        owner, model, framework, variation, version = ref.split("/")
        target = models_root / owner / model / framework / variation / version
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted((self.instance_dir(owner, model, framework, variation) / version / "files").iterdir()):
            if path.suffix == ".zip" and zipfile.is_zipfile(path):
                unpack_archive(path, target / path.stem)
            elif path.is_file():
                shutil.copyfile(path, target / path.name)

    def add_version(self, user: str, folder: Path, files: list) -> int:
        """A new version of an instance from these uploads, whole or not at all; its number."""
        uploads = [self.host.upload(item.token, user) for item in files]
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".version-", dir=folder))
        try:
            (staging / "files").mkdir()
            for upload in uploads:
                shutil.copyfile(upload, staging / "files" / upload.name)
            with self.host.lock:
                version = len(self.versions(folder)) + 1
                staging.rename(folder / str(version))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return version


def _owned(host, user: str, owner: str, model: str) -> None:
    host.models._readable(user, owner, model)
    if owner != user:
        raise HostError(403, f"Permission 'models.update' was denied for {owner}/{model}")


def create_model(host, user: str, request) -> ApiCreateModelResponse:
    owner, model = request.owner_slug, request.slug
    if owner != user:
        raise HostError(403, f"You can only create models as {user}/<slug>")
    base = host.models.base(owner, model)
    with host.lock:
        if (base / "model.json").is_file():
            return make(ApiCreateModelResponse, error=f"The model {owner}/{model} already exists")
        taken = [json.loads(path.read_text())["id"] for path in host.store.glob("models/*/*/model.json")]
        base.mkdir(parents=True, exist_ok=True)
        model_id = max(taken, default=0) + 1
        atomic_write_json(base / "model.json", {"id": model_id, "isPrivate": bool(request.is_private),
                                                "title": request.title})
    return make(ApiCreateModelResponse, id=model_id, ref=f"{owner}/{model}",
                url=f"{host.base_url}/models/{owner}/{model}")


def create_instance(host, user: str, request) -> ApiCreateModelResponse:
    owner, model, body = request.owner_slug, request.model_slug, request.body
    _owned(host, user, owner, model)
    folder = host.models.instance_dir(owner, model, body.framework, body.instance_slug)
    if (folder / "instance.json").is_file():
        return make(ApiCreateModelResponse, error=f"The instance {body.instance_slug} already exists")
    host.models.add_version(user, folder, body.files)
    atomic_write_json(folder / "instance.json", {"licenseName": body.license_name})
    ref = f"{owner}/{model}/{framework_key(body.framework)}/{body.instance_slug}"
    return make(ApiCreateModelResponse, id=1, ref=ref, url=f"{host.base_url}/models/{ref}")


def create_instance_version(host, user: str, request) -> ApiCreateModelResponse:
    owner, model = request.owner_slug, request.model_slug
    _owned(host, user, owner, model)
    folder = host.models.instance_dir(owner, model, request.framework, request.instance_slug)
    if not (folder / "instance.json").is_file():
        raise HostError(404, f"Model instance {owner}/{model}/{framework_key(request.framework)}/"
                             f"{request.instance_slug} not found")
    version = host.models.add_version(user, folder, request.body.files)
    ref = f"{owner}/{model}/{framework_key(request.framework)}/{request.instance_slug}/{version}"
    return make(ApiCreateModelResponse, id=version, ref=ref, url=f"{host.base_url}/models/{ref}")


def get_model(host, user: str, request) -> ApiModel:
    record = host.models._readable(user, request.owner_slug, request.model_slug)
    ref = f"{request.owner_slug}/{request.model_slug}"
    return make(ApiModel, id=record["id"], ref=ref, slug=request.model_slug, title=record.get("title") or "",
                author=request.owner_slug, is_private=record.get("isPrivate", True), url=f"{host.base_url}/models/{ref}")


def get_instance(host, user: str, request) -> ApiModelInstance:
    host.models._readable(user, request.owner_slug, request.model_slug)
    folder = host.models.instance_dir(request.owner_slug, request.model_slug, request.framework, request.instance_slug)
    versions = host.models.versions(folder)
    if not versions:
        raise HostError(404, f"Model instance {request.instance_slug} not found")
    return make(ApiModelInstance, slug=request.instance_slug, framework=ModelFramework[
        getattr(request.framework, "name", "MODEL_FRAMEWORK_UNSPECIFIED")], version_number=versions[-1])


MODEL_ROUTES = {MODELS + name: handler for name, handler in {
    "CreateModel": create_model, "CreateModelInstance": create_instance,
    "CreateModelInstanceVersion": create_instance_version, "GetModel": get_model,
    "GetModelInstance": get_instance}.items()}
