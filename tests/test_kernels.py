"""Kernel templates, the kit bundle, and `headstart kernel push` end to end against `headstart host`."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tasks.backends.kernels import (
    BUNDLE_NAME,
    KernelConfig,
    build_bundle,
    kernel_slug,
    render_kernel,
)
from tasks.backends.practice import digits_frames
from tasks.competitions import DIGIT_RECOGNIZER
from tasks.errors import ConfigError, UploadError
from tasks.host.kernels import notebook_to_script
from tasks.submission import read_submission, validate_submission
from tests.hosting import KEY, USER, assert_no_secret, push_script

SETTINGS = {"member": ["softmax"], "epochs": 1, "folds": 2}
NO_PREFECT = """
import importlib.abc, sys

class NoPrefect(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "prefect" or name.startswith("prefect."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoPrefect())
"""


def write_spec(path: Path) -> Path:
    path.write_text(json.dumps({"spec": DIGIT_RECOGNIZER.with_slug("digits").to_dict()}))
    return path


def test_render_script_and_metadata(tmp_path):
    kernel = KernelConfig(accelerator="gpu", datasets=("alice/effnet-weights",),
                          models=("keras/efficientnet/keras/b0/1",), settings=SETTINGS)
    folder = render_kernel(tmp_path, USER, "digits", kernel, spec="specs/digits.json")
    metadata = json.loads((folder / "kernel-metadata.json").read_text())
    assert metadata["id"] == "alice/headstart-digits" and metadata["title"] == "headstart digits"
    assert (metadata["code_file"], metadata["language"], metadata["kernel_type"]) == ("script.py", "python", "script")
    assert metadata["enable_gpu"] is True and metadata["enable_internet"] is False
    assert metadata["competition_sources"] == ["digits"]
    assert metadata["dataset_sources"] == ["alice/headstart-kit", "alice/effnet-weights"]
    assert metadata["model_sources"] == ["keras/efficientnet/keras/b0/1"]
    script = (folder / "script.py").read_text()
    assert "{{" not in script and "accelerator:  gpu" in script and "internet:     off" in script
    assert "COMPETITION = 'digits'" in script and "SPEC = 'specs/digits.json'" in script
    compile(script, "script.py", "exec")


def test_long_competition_slugs_fit_kaggles_50_characters(tmp_path):
    """Kaggle refuses kernel titles and slugs over 50 characters (with a misleading 500)."""
    long_a = "jigsaw-unintended-bias-in-toxicity-classification-2026"
    long_b = "jigsaw-unintended-bias-in-toxicity-classification-2027"
    assert kernel_slug("digits") == "headstart-digits"
    assert len(kernel_slug(long_a)) <= 50 and kernel_slug(long_a) == kernel_slug(long_a)
    assert kernel_slug(long_a) != kernel_slug(long_b)  # the hash keeps slugs of one prefix apart
    metadata = json.loads((render_kernel(tmp_path, USER, long_a, KernelConfig()) / "kernel-metadata.json").read_text())
    assert len(metadata["title"]) <= 50 and metadata["id"] == f"{USER}/{kernel_slug(long_a)}"
    assert metadata["competition_sources"] == [long_a]


def test_tpu_is_refused_with_the_reason():
    """Kaggle's TPU image ships tensorflow-cpu: the kit would silently train on the CPU there."""
    with pytest.raises(ConfigError, match="tensorflow-cpu.*--accelerator gpu"):
        KernelConfig(accelerator="tpu")


def test_a_push_without_a_version_number_is_a_clear_error(tmp_path):
    """kagglesdk's push response has an optional version number: never int(None)."""
    from types import SimpleNamespace

    from tasks.backends.kernel_runs import push_kernel
    from tasks.errors import BackendError

    folder = render_kernel(tmp_path, USER, "digits", KernelConfig())
    api = SimpleNamespace(config_values={}, kernels_push=lambda folder, **options: SimpleNamespace(error="",
                                                                                       version_number=None))
    with pytest.raises(BackendError, match="accepted alice/headstart-digits but named no version"):
        push_kernel(api, folder)


def test_render_notebook(tmp_path):
    folder = render_kernel(tmp_path, USER, "digits", KernelConfig(kernel_type="notebook"))
    metadata = json.loads((folder / "kernel-metadata.json").read_text())
    assert metadata["code_file"] == "notebook.ipynb" and metadata["kernel_type"] == "notebook"
    assert "enable_gpu" in metadata and metadata["enable_gpu"] is False
    notebook = json.loads((folder / "notebook.ipynb").read_text())
    assert notebook["cells"][0]["cell_type"] == "markdown" and "internet: off" in "".join(notebook["cells"][0]["source"])
    compile(notebook_to_script((folder / "notebook.ipynb").read_text()), "notebook", "exec")
    with pytest.raises(ConfigError, match="kernel type"):
        KernelConfig(kernel_type="rmarkdown")


def test_bundle_holds_the_kit_and_nothing_else(tmp_path):
    folder = build_bundle(tmp_path / "bundle", USER, write_spec(tmp_path / "digits.json"), secrets=(KEY,))
    names = zipfile.ZipFile(folder / BUNDLE_NAME).namelist()
    assert {"pyproject.toml", "tasks/backends/kaggle.py", "tasks/stages.py", "flows/compete.py", "flows/kaggle_notebook.py",
            "specs/digits.json"} <= set(names)
    assert not [name for name in names if "__pycache__" in name or name.startswith("data/") or name.endswith(".pyc")]
    metadata = json.loads((folder / "dataset-metadata.json").read_text())
    assert metadata["id"] == "alice/headstart-kit" and len(metadata["licenses"]) == 1


def test_bundle_refuses_credentials(tmp_path):
    root = tmp_path / "kit"
    (root / "tasks").mkdir(parents=True)
    (root / "flows").mkdir()
    (root / "pyproject.toml").write_text("[project]\n")
    (root / "tasks" / "kaggle.json").write_text(json.dumps({"username": USER, "key": KEY}))
    names = zipfile.ZipFile(build_bundle(tmp_path / "bundle", USER, root=root, secrets=(KEY,)) / BUNDLE_NAME).namelist()
    assert "tasks/kaggle.json" not in names
    (root / "flows" / "settings.py").write_text(f"KEY = {KEY!r}\n")
    with pytest.raises(UploadError, match="settings.py: holds a Kaggle credential"):
        build_bundle(tmp_path / "bundle", USER, root=root, secrets=(KEY,))


def kaggle_layout(root: Path, kit_unpacked: bool) -> Path:
    """/kaggle/input as a 2026 notebook sees it: the competition under competitions/<slug>, the kit under
    datasets/<owner>/<slug>/, either unpacked by Kaggle into a folder named after the zip, or still zipped."""
    competition = root / "input" / "competitions" / "digits"
    competition.mkdir(parents=True)
    frames = digits_frames()
    for name in ("train.csv", "test.csv", "sample_submission.csv"):
        frames[name].to_csv(competition / name, index=False)
    bundle = build_bundle(root / "bundle", USER, write_spec(root / "digits.json"))
    dataset = root / "input" / "datasets" / USER / "headstart-kit"
    if kit_unpacked:
        with zipfile.ZipFile(bundle / BUNDLE_NAME) as zipped:
            zipped.extractall(dataset / "headstart-kit")
    else:
        dataset.mkdir(parents=True)
        (bundle / BUNDLE_NAME).rename(dataset / BUNDLE_NAME)
    return root


@pytest.mark.parametrize("kernel_type, kit_unpacked", [("script", True), ("notebook", False)])
def test_each_template_writes_a_valid_submission_offline(tmp_path, kernel_type, kit_unpacked):
    root = kaggle_layout(tmp_path / "kaggle", kit_unpacked)
    folder = render_kernel(tmp_path / "kernel", USER, "digits", KernelConfig(kernel_type=kernel_type,
                                                                            settings=SETTINGS), "specs/digits.json")
    code = folder / ("script.py" if kernel_type == "script" else "notebook.ipynb")
    if kernel_type == "notebook":
        code = tmp_path / "notebook.py"
        code.write_text(notebook_to_script((folder / "notebook.ipynb").read_text()))
    working = tmp_path / "working"
    dead_proxy = "http://127.0.0.1:9"  # no internet
    # Kaggle's image has no Prefect: here `import prefect` raises, as it would there.
    (tmp_path / "no_prefect").mkdir()
    (tmp_path / "no_prefect" / "sitecustomize.py").write_text(NO_PREFECT)
    environment = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "2",
                   "HEADSTART_KAGGLE_INPUT": str(root / "input"), "HEADSTART_KAGGLE_WORKING": str(working),
                   "HTTP_PROXY": dead_proxy, "HTTPS_PROXY": dead_proxy, "PYTHONPATH": str(tmp_path / "no_prefect")}
    blocked = subprocess.run([sys.executable, "-c", "import prefect"], env=environment, capture_output=True, text=True)
    assert blocked.returncode == 1 and "No module named 'prefect'" in blocked.stderr
    run_and_check_submission(code, environment, tmp_path, root, working, timeout=300)
    assert json.loads((working / "headstart-run.json").read_text())["config"]["submit"] is False


def test_publish_kit_creates_then_versions_the_dataset(hosted, tmp_path):
    from tasks.backends import backend_for
    from tasks.backends.kernels import publish_kit
    from tasks.config import Config

    config = Config(competition="digits", data_dir=str(hosted.data_dir), backend="kaggle", spec=hosted.spec_file)
    backend = backend_for(config)
    assert publish_kit(config, backend, tmp_path) == "alice/headstart-kit/1"
    assert publish_kit(config, backend, tmp_path) == "alice/headstart-kit/2"  # pinned: the kernel gets this version
    files = hosted.host.datasets.files_dir(USER, "headstart-kit")
    assert files.parent.name == "2" and (files / BUNDLE_NAME).is_file()
    rpcs = [rpc.split("/")[-1] for rpc in hosted.host.rpcs()]
    assert rpcs.count("CreateDataset") == 1 and rpcs.count("CreateDatasetVersion") == 1


def test_kernel_push_end_to_end_in_a_code_competition(prefect_server, hosted_factory, capfd):
    """Bundle, publish, push, run (in a subprocess on the host), collect, submit by CreateCodeSubmission."""
    from flows.kernel import kernel_push
    from tasks.config import Config

    hosted = hosted_factory(run_kernels=True, unsafe_kernels=True, code_competition=True)
    config = Config(competition="digits", data_dir=str(hosted.data_dir), backend="kaggle", spec=hosted.spec_file)
    record = json.loads(Path(kernel_push(config, KernelConfig(settings=SETTINGS, poll_interval=0.2, timeout=300)))
                        .read_text())
    assert record["kernel"] == "alice/headstart-digits" and record["version"] == 1
    assert record["bundle"] == "alice/headstart-kit/1"  # the kernel is attached to the version just published
    pushed = hosted.host.kernels.record(USER, "headstart-digits")
    assert pushed["datasetDataSources"] == ["alice/headstart-kit/1"]
    assert pushed["sessionTimeoutSeconds"] == 43200  # Kaggle's 12 h, asked for (kaggle kernels push -t)
    assert record["submission"]["status"] == "complete" and record["submission"]["public_score"] > 0.3
    assert (Path(record["output"]) / "submission.csv").is_file()
    rpcs = [rpc.split("/")[-1] for rpc in hosted.host.rpcs()]
    assert "CreateCodeSubmission" in rpcs and "StartSubmissionUpload" not in rpcs
    log = [json.loads(line) for line in (hosted.data_dir / "06_submissions" / "kaggle" / "digits" / "log.jsonl").open()]
    assert log[-1]["status"] == "complete" and "kernel alice/headstart-digits v1" in log[-1]["description"]
    captured = capfd.readouterr()
    assert_no_secret(captured.out, captured.err, paths=(hosted.data_dir, hosted.host.store))


def test_the_kit_dataset_is_ready_before_anything_uses_it(hosted_factory, tmp_path):
    """Kaggle processes a dataset version asynchronously and refuses a new one meanwhile (403): publishing
    waits for the last version, and returns only once the new one is ready."""
    from tasks.backends.kaggle_client import authenticated_api
    from tasks.backends.kernels import publish_kit
    from tasks.config import Config

    hosted = hosted_factory(run_kernels=False, dataset_processing_seconds=1.5)
    from tasks.backends import backend_for

    config = Config(competition="digits", data_dir=str(hosted.data_dir), backend="kaggle", spec=hosted.spec_file)
    backend = backend_for(config)
    publish_kit(config, backend, tmp_path, poll_interval=0.1)
    assert authenticated_api().dataset_status("alice/headstart-kit") == "ready"
    publish_kit(config, backend, tmp_path, poll_interval=0.1)  # at once: the new version must wait, not be refused
    assert hosted.host.datasets.files_dir(USER, "headstart-kit").parent.name == "2"
    assert authenticated_api().dataset_status("alice/headstart-kit") == "ready"


@pytest.mark.slow  # 20 s: the kit dataset's step is retried after its 30 s network delay
def test_a_kernel_push_is_never_retried(prefect_server, hosted, tmp_path):
    """A 503 on the push (Kaggle may have saved a version all the same): `headstart kernel push` fails at once, in
    one error line that says it was not retried, with exactly one push sent; the kit's publishing before it, a
    network step, is retried through a 503 of its own."""
    from typer.testing import CliRunner

    from flows.cli import app

    hosted.host.fail_next(503, path_contains="CreateDataset")
    hosted.host.fail_next(503, path_contains="SaveKernel")
    result = CliRunner().invoke(app, ["kernel", "push", "digits", "--spec", hosted.spec_file, "--data-dir",
                                      str(hosted.data_dir), "--member", "softmax", "--epochs", "1", "--folds", "2"])
    assert result.exit_code == 1, result.output
    assert result.output == ("error: Kaggle could not push the kernel for 'alice/headstart-digits' (503: Injected "
                             "failure (503)); not retried, as Kaggle may have done it all the same: check before you "
                             "try again\n")
    rpcs = [rpc.split("/")[-1] for rpc in hosted.host.rpcs()]
    assert rpcs.count("CreateDataset") == 2 and rpcs.count("SaveKernel") == 1
    assert rpcs[-1] == "SaveKernel"  # nothing after it: no status poll, no output, no submission


def test_sources_kaggle_cannot_attach_fail_the_push_by_name(hosted_factory, tmp_path):
    """Kaggle pushes (and runs) a kernel whose sources it could not attach, naming them in
    invalidDatasetSources etc., not in `error`: the kit must not carry on with a kernel missing its inputs."""
    from tasks.backends.kaggle_client import authenticated_api
    from tasks.backends.kernel_runs import push_kernel
    from tasks.errors import BackendError

    hosted = hosted_factory(run_kernels=False)
    folder = render_kernel(tmp_path, USER, "digits", KernelConfig(datasets=("alice/no-such-weights",)))
    with pytest.raises(BackendError, match=r"could not attach its sources \(dataset alice/headstart-kit, "
                                           r"alice/no-such-weights\)"):
        push_kernel(authenticated_api(), folder)
    assert "SaveKernel" in [rpc.split("/")[-1] for rpc in hosted.host.rpcs()]  # it was pushed, as on Kaggle


def run_and_check_submission(code: Path, environment: dict, cwd: Path, root: Path, working: Path,
                             timeout: int) -> None:
    """Run a kernel's code as Kaggle would, then check the submission.csv it left against digits' sample."""
    result = subprocess.run([sys.executable, str(code)], env=environment, cwd=cwd, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    sample = read_submission(root / "input" / "competitions" / "digits" / "sample_submission.csv")
    validate_submission(read_submission(working / "submission.csv"), sample, DIGIT_RECOGNIZER.with_slug("digits"),
                        "submission.csv")


def published_kernel_output(hosted, tmp_path, slug: str, version: int) -> dict:
    """A version of a kernel pushed with the kaggle CLI, and left by the host (which runs none here) with the
    same submission.csv as every other version: the record the kit's push would have written for it."""
    folder = tmp_path / slug
    folder.mkdir(exist_ok=True)
    (folder / "run.py").write_text(f"print('version {version}')\n")
    (folder / "kernel-metadata.json").write_text(json.dumps({
        "id": f"{USER}/{slug}", "title": slug, "code_file": "run.py", "language": "python", "kernel_type": "script",
        "competition_sources": ["digits"]}))
    hosted.kaggle("kernels", "push", "-p", folder)
    sample = hosted.backend.sample_submission()
    sample["Label"] = "3"
    sample.to_csv(hosted.host.kernels.output_dir(USER, slug, version) / "submission.csv", index=False)
    return {"competition": "digits", "kernel": f"{USER}/{slug}", "version": version, "kit_sha256": "ab" * 32}


def test_a_new_kernel_version_is_a_new_code_submission_even_with_the_same_output(hosted_factory, tmp_path):
    """In a code competition Kaggle scores the version's run on the hidden test set: the guard knows a submission
    by its kernel version and kit, so v2 is sent although its visible submission.csv is v1's, byte for byte; v2
    again is not."""
    from tasks.backends import backend_for
    from tasks.backends.kernel_runs import download_output, submit_kernel_output
    from tasks.config import Config

    hosted = hosted_factory(run_kernels=False, code_competition=True)
    config = Config(competition="digits", data_dir=str(hosted.data_dir), backend="kaggle", spec=hosted.spec_file)
    backend, kernel_dir = backend_for(config), config.paths.kernels("digits")
    records = [published_kernel_output(hosted, tmp_path, "coded-kernel", version) for version in (1, 2)]
    results = [submit_kernel_output(config, backend, download_output(backend, kernel_dir, record), record)
               for record in (*records, records[1])]
    assert [result.get("duplicate", False) for result in results] == [False, False, True]
    assert results[0]["ref"] != results[1]["ref"] == results[2]["ref"]
    assert results[0]["sha256"] == results[1]["sha256"]  # the same visible file
    assert [rpc.split("/")[-1] for rpc in hosted.host.rpcs()].count("CreateCodeSubmission") == 2
    assert results[1]["identity"] == f"kernel {USER}/coded-kernel v2, kit {'ab' * 6}"


def test_the_kit_is_pinned_to_the_version_it_uploaded_when_kaggle_registers_it_late(hosted_factory, tmp_path):
    """Kaggle reports a new dataset version's number some time after the upload (GetDataset still says the last
    one): pinning what it reports then would attach the kernel to the previous kit."""
    from tasks.backends import backend_for
    from tasks.backends.kernels import publish_kit
    from tasks.config import Config

    hosted = hosted_factory(run_kernels=False, dataset_registration_seconds=2.0)
    config = Config(competition="digits", data_dir=str(hosted.data_dir), backend="kaggle", spec=hosted.spec_file)
    backend = backend_for(config)
    assert publish_kit(config, backend, tmp_path, poll_interval=0.1) == "alice/headstart-kit/1"
    assert publish_kit(config, backend, tmp_path, poll_interval=0.1) == "alice/headstart-kit/2"
    assert publish_kit(config, backend, tmp_path, poll_interval=0.1) == "alice/headstart-kit/3"


BLOCKER = "import time\ntime.sleep(6)\n"


@pytest.mark.slow  # 20 s: a kernel run on the host, waited out
def test_a_push_that_outlives_the_wait_is_collected_later(prefect_server, hosted_factory, tmp_path):
    """The push is recorded before anything can fail; when the wait ends first (here: Kaggle's queue, one kernel at
    a time), `headstart kernel collect` waits for that version, downloads its output and submits it (with our rank),
    pushing nothing; `kernel status` and `kernel output` read the same push."""
    from typer.testing import CliRunner

    from flows.cli import app
    from flows.kernel import kernel_push
    from tasks.config import Config
    from tasks.errors import BackendError

    hosted = hosted_factory(run_kernels=True, unsafe_kernels=True, kernels_at_once=1)
    (tmp_path / "blocker").mkdir()
    (tmp_path / "blocker" / "run.py").write_text(BLOCKER)
    (tmp_path / "blocker" / "kernel-metadata.json").write_text(json.dumps({
        "id": f"{USER}/blocker", "title": "blocker", "code_file": "run.py", "language": "python",
        "kernel_type": "script"}))
    hosted.kaggle("kernels", "push", "-p", tmp_path / "blocker")
    config = Config(competition="digits", data_dir=str(hosted.data_dir), backend="kaggle", spec=hosted.spec_file)
    with pytest.raises(BackendError, match=r"still QUEUED after 1 s .*`headstart kernel collect digits`"):
        kernel_push(config, KernelConfig(settings=SETTINGS, poll_interval=0.2, timeout=1))
    pushes = [rpc for rpc in hosted.host.rpcs() if rpc.endswith("SaveKernel")]
    options = ["digits", "--data-dir", str(hosted.data_dir)]
    runner = CliRunner(env={"COLUMNS": "200"})
    waiting = runner.invoke(app, ["kernel", "status", *options])
    assert waiting.exit_code == 0 and f"kernel {USER}/headstart-digits v1" in waiting.output
    collected = runner.invoke(app, ["kernel", "collect", *options, "--spec", hosted.spec_file,
                                    "--poll-interval", "0.2"])
    assert collected.exit_code == 0, collected.output
    assert f"kernel {USER}/headstart-digits v1: output in" in collected.output
    assert "submission 1: status complete, public score 0." in collected.output
    assert "rank 1 on the public leaderboard" in collected.output and "None" not in collected.output
    assert [rpc for rpc in hosted.host.rpcs() if rpc.endswith("SaveKernel")] == pushes  # nothing pushed again
    done = runner.invoke(app, ["kernel", "status", *options])
    assert done.exit_code == 0 and "COMPLETE" in done.output
    listed = runner.invoke(app, ["kernel", "output", *options])
    assert listed.exit_code == 0 and "submission.csv" in listed.output and "headstart-digits.log" in listed.output


FAILING_RERUN = '''import os
import pandas as pd
if os.environ.get("KAGGLE_IS_COMPETITION_RERUN"):
    raise SystemExit("the hidden test set broke it")
inputs, working = os.environ["HEADSTART_KAGGLE_INPUT"], os.environ["HEADSTART_KAGGLE_WORKING"]
pd.read_csv(f"{inputs}/competitions/digits/sample_submission.csv").to_csv(f"{working}/submission.csv", index=False)
'''


def test_an_error_without_a_description_says_so(prefect_server, hosted_factory, tmp_path):
    """A code submission whose scoring run fails comes back as an error with an empty errorDescription (Kaggle's
    often does): `headstart kernel collect` says Kaggle gave no reason, never "None"."""
    from typer.testing import CliRunner

    from flows.cli import app
    from tasks.backends.kernel_runs import PUSHED
    from tasks.config import Config
    from tasks.files import atomic_write_json

    hosted = hosted_factory(run_kernels=True, unsafe_kernels=True, code_competition=True)
    push_script(hosted, tmp_path / "failing-kernel", FAILING_RERUN, competition_sources=["digits"])
    config = Config(competition="digits", data_dir=str(hosted.data_dir), backend="kaggle")
    atomic_write_json(config.paths.kernels("digits") / PUSHED, {  # as `headstart kernel push` records a push
        "competition": "digits", "kernel": f"{USER}/failing-kernel", "version": 1, "kit_sha256": None,
        "session_timeout": 43200, "pushed": "2026-01-01T00:00:00+00:00"})
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, [
        "kernel", "collect", "digits", "--data-dir", str(hosted.data_dir), "--spec", hosted.spec_file,
        "--poll-interval", "0.2"])
    assert result.exit_code == 0, result.output
    assert "submission 1: status error: Kaggle gave no reason (its errorDescription is empty)" in result.output
    assert "None" not in result.output
