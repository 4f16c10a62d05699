"""Weights that load in Kaggle's image (issue 23, item 7): the Keras and TensorFlow versions beside every model the
kit saves or exports, checked when one is loaded and before a push attaches one."""

import json
import zipfile

import pytest

from tasks.errors import ConfigError
from tasks.saved_models import incompatibility, load_model, record_versions, running_versions, saved_versions
from tests.hosting import USER


def keras_file(path, keras_version: str):
    """A .keras file as Keras writes one (a zip whose metadata.json names the Keras that saved it)."""
    with zipfile.ZipFile(path, "w") as zipped:
        zipped.writestr("metadata.json", json.dumps({"keras_version": keras_version, "date_saved": "2026-01-01"}))
        zipped.writestr("config.json", "{}")
    return path


def test_the_versions_that_saved_a_model_decide_where_it_loads(tmp_path):
    assert incompatibility({"keras": "3.8.0", "tensorflow": "2.18.0"}, {"keras": "3.15.1", "tensorflow": "2.21.0"}) \
        is None  # older files load in newer versions
    assert incompatibility({"keras": "3.15.1"}, {"keras": "3.8.0"}) == "saved with keras 3.15.1, to be loaded with " \
                                                                      "keras 3.8.0"
    assert incompatibility({"tensorflow": "2.21.0"}, {"tensorflow": "2.18.1"}) is not None
    assert incompatibility({"keras": "2.15.0"}, {"keras": "3.15.1"}) is not None  # another major version
    assert incompatibility({"keras": None}, {"keras": "3.8.0"}) is None  # unknown: nothing to say
    model = keras_file(tmp_path / "net.keras", "3.12.0")
    assert saved_versions(model) == {"keras": "3.12.0", "tensorflow": None}
    record_versions(model, {"keras": "3.12.0", "tensorflow": "2.20.0"})
    assert saved_versions(model) == {"keras": "3.12.0", "tensorflow": "2.20.0"}


def test_a_model_from_a_newer_keras_is_refused_with_both_versions_named(tmp_path):
    model = keras_file(tmp_path / "future.keras", "9.1.0")
    with pytest.raises(ConfigError) as refused:
        load_model(model)
    message = str(refused.value)
    assert "saved with keras 9.1.0, to be loaded with keras " + running_versions()["keras"] in message
    assert message.startswith(str(model))


def test_an_export_kaggles_image_cannot_load_fails_the_push(prefect_server, hosted, tmp_path):
    """`headstart kernel export` publishes the backbone with its versions; once a kernel has come back saying
    Kaggle's image runs an older Keras, `headstart kernel push --dataset` that export stops before pushing, naming
    both versions."""
    from typer.testing import CliRunner

    from flows.cli import app
    from tasks.files import atomic_write_json

    model = keras_file(tmp_path / "tiny.keras", running_versions()["keras"])
    record_versions(model)
    runner, options = CliRunner(env={"COLUMNS": "200"}), ["--data-dir", str(hosted.data_dir)]
    exported = runner.invoke(app, ["kernel", "export", "digits", "--backbone", f"file:{model}", *options])
    assert exported.exit_code == 0, exported.output
    assert f"tiny.keras: saved with keras {running_versions()['keras']}, tensorflow " in exported.output
    assert f"exported as {USER}/headstart-models-digits/1" in exported.output
    files = sorted(path.name for path in hosted.host.datasets.files_dir(USER, "headstart-models-digits").iterdir())
    assert files == ["headstart-models.json", "tiny.keras", "tiny.keras.versions.json"]
    kernels = hosted.data_dir / "07_kernels" / "kaggle"
    atomic_write_json(kernels / "digits" / "output" / "3" / "headstart-run.json",  # as a kernel's output brings it
                      {"versions": {"keras": "3.8.0", "tensorflow": "2.18.0"}})
    pushed = runner.invoke(app, ["kernel", "push", "digits", "--spec", hosted.spec_file, "--dataset",
                                 f"{USER}/headstart-models-digits/1", *options])
    assert pushed.exit_code == 1 and pushed.output.startswith("error: ") and pushed.output.count("error:") == 1
    assert f"keras {running_versions()['keras']}, to be loaded with keras 3.8.0" in pushed.output
    assert "Kaggle's image ran keras 3.8.0, tensorflow 2.18.0" in pushed.output
    assert "SaveKernel" not in " ".join(hosted.host.rpcs())
