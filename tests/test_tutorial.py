"""The tutorial notebook (kernels/tutorial.ipynb): committed without outputs, executed top to bottom on digits
offline with a tiny backbone and no Prefect, its pictures rendered, and pushable as a Kaggle notebook."""

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.backends.kernels import KernelConfig, kernel_slug, render_kernel
from tasks.backends.notebooks import inject_parameters, parameter_names
from tasks.errors import ConfigError
from tasks.host.kernels import notebook_to_script
from tests.factories import kaggle_zip, tiny_backbone_file
from tests.hosting import USER
from tests.test_kernels import NO_PREFECT, kaggle_layout, run_and_check_submission

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "kernels" / "tutorial.ipynb"
# Pictures each tagged cell must show (image/png outputs): one per plot, two where two members are compared.
PICTURES = {"samples": 1, "histogram": 1, "filters": 1, "feature-maps": 1, "projection": 1, "curves": 2,
            "confusion": 2, "augmentation": 1, "finetune": 2, "blend": 1}
SMALL = {"IMAGE_SIZE": 32, "FOLDS": 2, "EPOCHS": 2, "CNN_FILTERS": 8, "FINETUNE_EPOCHS": 1, "TSNE_SAMPLE": 120}


def tutorial() -> dict:
    return json.loads(TUTORIAL.read_text())


def tagged(notebook: dict, tag: str) -> dict:
    return next(cell for cell in notebook["cells"] if tag in cell["metadata"].get("tags", []))


def offline_environment(tmp_path: Path, **extra) -> dict:
    """No internet (a dead proxy), no Prefect (importing it fails, as in Kaggle's image), this checkout first."""
    (tmp_path / "no_prefect").mkdir(exist_ok=True)
    (tmp_path / "no_prefect" / "sitecustomize.py").write_text(NO_PREFECT)
    dead_proxy = "http://127.0.0.1:9"
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "no_prefect"), str(ROOT)]),
            "HTTP_PROXY": dead_proxy, "HTTPS_PROXY": dead_proxy, "http_proxy": dead_proxy, "https_proxy": dead_proxy,
            "HEADSTART_KAGGLE_INPUT": str(tmp_path / "no-kaggle-input"), "TF_CPP_MIN_LOG_LEVEL": "2",
            # One OpenMP thread: t-SNE's threads spun against the other processes of a busy 2-core machine (40x).
            "OMP_NUM_THREADS": "1", **extra}


def test_the_committed_tutorial_has_no_outputs_and_every_tagged_cell():
    notebook = tutorial()
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code and all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)
    tags = {tag for cell in notebook["cells"] for tag in cell["metadata"].get("tags", [])}
    assert {"parameters", "leaderboard", *PICTURES} <= tags
    assert set(SMALL) | {"COMPETITION", "SPEC", "BACKBONE", "DATA_DIR"} <= set(parameter_names(notebook))
    assert "{{" not in TUTORIAL.read_text()  # runnable as it is: pushes inject parameters, not placeholders
    source = notebook_to_script(TUTORIAL.read_text())
    assert "prefect" not in source and "flows.compete" not in source  # Kaggle's image has no Prefect
    compile(source, "tutorial", "exec")


def test_parameters_are_injected_after_the_parameters_cell_and_unknown_ones_refused():
    notebook = inject_parameters(tutorial(), {"COMPETITION": "cifar-10", "EPOCHS": 1})
    position = notebook["cells"].index(tagged(notebook, "parameters"))
    injected = notebook["cells"][position + 1]
    assert injected["metadata"]["tags"] == ["injected-parameters"]
    assert "COMPETITION = 'cifar-10'\n" in injected["source"] and "EPOCHS = 1\n" in injected["source"]
    with pytest.raises(ConfigError, match="no parameter MEMBERS; its parameters are COMPETITION, SPEC"):
        inject_parameters(tutorial(), {"MEMBERS": ["cnn"]})
    with pytest.raises(ConfigError, match="no cell tagged 'parameters'"):
        inject_parameters({"cells": [{"cell_type": "code", "metadata": {}, "source": ["X = 1\n"]}]}, {"X": 2})


def test_render_the_tutorial_as_its_own_kernel(tmp_path):
    kernel = KernelConfig(kernel_type="notebook", notebook="tutorial", settings={"epochs": 1, "folds": 2})
    folder = render_kernel(tmp_path, USER, "digits", kernel, spec="specs/digits.json")
    metadata = json.loads((folder / "kernel-metadata.json").read_text())
    assert metadata["id"] == "alice/headstart-tutorial-digits" and metadata["code_file"] == "tutorial.ipynb"
    assert metadata["kernel_type"] == "notebook" and metadata["enable_internet"] is False
    notebook = json.loads((folder / "tutorial.ipynb").read_text())
    source = "".join(tagged(notebook, "injected-parameters")["source"])
    assert "COMPETITION = 'digits'" in source and "SPEC = 'specs/digits.json'" in source and "FOLDS = 2" in source
    assert "internet off" in source
    long_name = "jigsaw-unintended-bias-in-toxicity-classification-2026"
    assert len(kernel_slug(long_name, "headstart-tutorial")) <= 50
    with pytest.raises(ConfigError, match="the tutorial takes no option 'member'; it takes backbone, cnn_filters"):
        render_kernel(tmp_path, USER, "digits", KernelConfig(kernel_type="notebook", notebook="tutorial",
                                                             settings={"member": ["cnn"]}))
    with pytest.raises(ConfigError, match="push it with --type notebook"):
        KernelConfig(notebook="tutorial")
    with pytest.raises(ConfigError, match="notebook must be one of"):
        KernelConfig(kernel_type="notebook", notebook="lecture")


def test_the_notebook_opens_a_local_competition_or_the_mounted_one(tmp_path):
    from flows.kaggle_notebook import notebook_competition

    nowhere = tmp_path / "no-kaggle-input"
    config = notebook_competition("digits", tmp_path / "data", nowhere)
    assert (config.backend, config.input_dir, config.submit) == ("local", None, True)
    assert (tmp_path / "data" / "local" / "digits" / "competition.json").is_file()  # the built-in, created
    public_zip, solution = kaggle_zip(tmp_path, "digit-recognizer")
    with pytest.raises(ConfigError, match="give its solution CSV and its spec too"):
        notebook_competition("mine", tmp_path / "data", nowhere, public_zip=public_zip)
    notebook_competition("mine", tmp_path / "data", nowhere, "digit-recognizer", public_zip, solution)
    assert notebook_competition("mine", tmp_path / "data", nowhere).competition == "mine"  # created before
    root = kaggle_layout(tmp_path / "kaggle", kit_unpacked=True)
    mounted = notebook_competition("digits", tmp_path / "data", root / "input", "digit-recognizer")
    assert (mounted.backend, mounted.submit) == ("kaggle", False)
    assert mounted.input_dir == str(root / "input" / "competitions" / "digits")
    assert mounted.weights_dirs == (str(root / "input"),) and not mounted.data_dir.startswith(str(tmp_path / "data"))


def test_inside_kaggle_the_submission_is_left_for_kaggle_and_there_is_no_leaderboard(tmp_path):
    from flows.kaggle_notebook import leaderboard_frame, notebook_competition, submit_from_notebook

    root = kaggle_layout(tmp_path / "kaggle", kit_unpacked=True)
    config = notebook_competition("digits", input_root=root / "input", spec="digit-recognizer")
    submission = tmp_path / "blend.csv"
    submission.write_text("ImageId,Label\n1,3\n")
    assert submit_from_notebook(config, submission, tmp_path / "working") is None
    assert (tmp_path / "working" / "submission.csv").read_text() == submission.read_text()
    assert leaderboard_frame(config).empty


def test_pictures_are_shown_inline_or_named_without_ipython(tmp_path, monkeypatch, capsys):
    from flows.kaggle_notebook import show_pictures
    from tasks.plots import plot_class_histogram

    picture = plot_class_histogram(np.arange(6) % 2, ["a", "b"], tmp_path / "histogram.png")
    show_pictures(picture)  # outside a notebook IPython's display prints a placeholder
    monkeypatch.setitem(sys.modules, "IPython.display", None)  # a notebook run as a plain script
    show_pictures(picture)
    assert str(picture) in capsys.readouterr().out


@pytest.mark.slow  # 40-80 s: the default suite stays under ten minutes
def test_the_tutorial_runs_top_to_bottom_on_digits_offline(tmp_path, digits_store):
    """Executed as Jupyter does (nbclient, a real kernel), with the small parameters and a tiny backbone built
    without downloaded weights; any cell error fails the test. Every tagged cell shows its pictures."""
    import nbformat
    from nbclient import NotebookClient

    data_dir = tmp_path / "data"
    shutil.copytree(digits_store, data_dir)  # the session's copy stays unsubmitted to
    parameters = {**SMALL, "BACKBONE": f"file:{tiny_backbone_file(tmp_path / 'tiny.keras')}", "DATA_DIR": str(data_dir)}
    notebook = nbformat.reads(json.dumps(inject_parameters(tutorial(), parameters)), as_version=4)
    started = time.perf_counter()
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=offline_environment(tmp_path))
    elapsed = time.perf_counter() - started
    print(f"tutorial executed in {elapsed:.0f} s")
    for tag, count in PICTURES.items():
        outputs = tagged(notebook, tag)["outputs"]
        assert sum("image/png" in output.get("data", {}) for output in outputs) == count, (tag, outputs)
    leaderboard = tagged(notebook, "leaderboard")["outputs"][0]["data"]
    assert "<table" in leaderboard["text/html"] and "you" in leaderboard["text/plain"]
    log = [json.loads(line) for line in (data_dir / "06_submissions" / "local" / "digits" / "log.jsonl").open()]
    assert log[-1]["status"] == "complete" and log[-1]["public_score"] > 0.3  # chance is 0.1


@pytest.mark.slow  # the notebook again, as Kaggle's image runs it: a minute or two
def test_the_pushed_tutorial_runs_in_kaggles_layout_and_leaves_a_submission(tmp_path):
    """Rendered as `headstart kernel push` renders it, run as a script (as `headstart host` runs notebooks), with
    the competition and kit mounted as in Kaggle, no Prefect and no internet: it writes a valid submission.csv."""
    root = kaggle_layout(tmp_path / "kaggle", kit_unpacked=False)
    weights = root / "input" / "datasets" / USER / "tiny-backbone"
    weights.mkdir(parents=True)
    backbone = f"file:{tiny_backbone_file(weights / 'tiny.keras')}"
    settings = {name.lower(): value for name, value in {**SMALL, "BACKBONE": backbone}.items()}
    kernel = KernelConfig(kernel_type="notebook", notebook="tutorial", settings=settings)
    folder = render_kernel(tmp_path / "kernel", USER, "digits", kernel, "specs/digits.json")
    script = tmp_path / "tutorial.py"
    script.write_text(notebook_to_script((folder / "tutorial.ipynb").read_text()))
    working = tmp_path / "working"
    environment = offline_environment(tmp_path, HEADSTART_KAGGLE_INPUT=str(root / "input"),
                                      HEADSTART_KAGGLE_WORKING=str(working), HOME=str(tmp_path))
    run_and_check_submission(script, environment, tmp_path, root, working, timeout=600)


def test_push_the_tutorial_to_headstart_host(prefect_server, hosted):
    """`headstart kernel push --type notebook --notebook tutorial` against the host: the kit is published, the
    tutorial pushed as its own notebook kernel with its parameters injected, and accepted."""
    from tests.test_cli import invoke

    output = invoke("kernel", "push", "digits", "--data-dir", hosted.data_dir, "--spec", hosted.spec_file,
                    "--type", "notebook", "--notebook", "tutorial", "--epochs", "1", "--folds", "2",
                    "--no-submit", "--poll-interval", "0.2", "--timeout", "60")
    assert "kernel alice/headstart-tutorial-digits v1" in output
    record = hosted.host.kernels.record(USER, "headstart-tutorial-digits")
    assert record["kernelType"] == "notebook" and record["datasetDataSources"] == ["alice/headstart-kit/1"]
    stored = hosted.host.kernels.directory(USER, "headstart-tutorial-digits", 1) / record["source"]
    notebook = json.loads(stored.read_text())
    source = "".join(tagged(notebook, "injected-parameters")["source"])
    assert "COMPETITION = 'digits'" in source and "EPOCHS = 1" in source and "SPEC = 'specs/competition.json'" in source
    assert pd.Series([cell["cell_type"] for cell in notebook["cells"]]).eq("markdown").sum() >= 10


@pytest.mark.slow  # the tutorial executed through the command line: a minute or two
def test_headstart_tutorial_executes_it_with_run_options_as_parameters(tmp_path, digits_store):
    """`headstart tutorial` injects the run options it has parameters for and saves the executed notebook; no
    TensorFlow start-up note reaches its cells."""
    import subprocess

    from tests.factories import HEADSTART

    data_dir, output = tmp_path / "data", tmp_path / "executed.ipynb"
    shutil.copytree(digits_store, data_dir)
    backbone = tiny_backbone_file(tmp_path / "tiny.keras")
    done = subprocess.run([HEADSTART, "tutorial", "--backbone", f"file:{backbone}", "--image-size", "32", "--folds",
                           "2", "--epochs", "2", "--finetune-epochs", "1", "--data-dir", str(data_dir), "--output",
                           str(output)], env=offline_environment(tmp_path), capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"tutorial executed: {output}"
    notebook = json.loads(output.read_text())
    injected = "".join(tagged(notebook, "injected-parameters")["source"])
    assert f"BACKBONE = 'file:{backbone}'" in injected and "FOLDS = 2" in injected and "IMAGE_SIZE = 32" in injected
    streams = "".join("".join(out.get("text", "")) for cell in notebook["cells"] for out in cell.get("outputs", [])
                      if out.get("output_type") == "stream")
    assert "absl::InitializeLog" not in streams and "cudart_stub" not in streams
    refused = subprocess.run([HEADSTART, "tutorial", "--member", "cnn", "--data-dir", str(data_dir)],
                             env=offline_environment(tmp_path), capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and refused.stderr.strip().splitlines() == [
        "error: the tutorial takes no option 'member'; it takes backbone, cnn_filters, competition_zip, epochs, "
        "finetune_epochs, folds, image_size, seed, solution_csv, tsne_sample, weights_dir"]
