"""Every command of the unmodified kaggle CLI's competitions, kernels and datasets groups against `headstart host`
(issue 23, item 8): each gets the answer Kaggle gives a participant, none an unknown-call 404.

The commands come from the CLI's own argument parser (kaggle/cli.py): a command added to the CLI fails
`test_every_command_has_a_host_answer` until it is given arguments here.
"""

import argparse
import contextlib
import io
import json
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.hosting import USER, call, perfect_submission

KERNEL, DATASET = f"{USER}/my-kernel", f"{USER}/my-dataset"
# Each leaf command and its arguments ({tmp} is the test's folder). Run after a submission, a dataset and a kernel
# exist; the ones that change them run last, in this order.
COMMANDS = {
    "competitions list": [], "competitions files": ["digits", "--page-size", "2"],
    "competitions download": ["digits", "-p", "{tmp}/all"],
    "competitions submit": ["digits", "-f", "{tmp}/perfect.csv", "-m", "again"],
    "competitions submissions": ["digits"], "competitions submission": ["1"],
    "competitions leaderboard": ["digits", "--show"], "competitions team-submissions": ["1"],
    "competitions submission-limits": ["digits"], "competitions submission-download": ["1", "-p", "{tmp}/sub"],
    "competitions episodes": ["1"], "competitions replay": ["1", "-p", "{tmp}/replay"],
    "competitions logs": ["1", "0", "-p", "{tmp}/logs"],
    # `pages` cannot be given a competition before its own command (argparse takes it for one): the client's default
    # competition (KAGGLE_COMPETITION, every run here) names it.
    "competitions pages list": [], "competitions pages create": ["--page-name", "faq", "-f", "{tmp}/page.md"],
    "competitions pages update": ["--page-name", "faq", "-f", "{tmp}/page.md"],
    "competitions pages delete": ["--page-name", "faq", "-y"],
    "competitions hosts": ["digits"],
    "competitions host-add": ["digits", "-u", "bob", "-y"],
    "competitions data update": ["digits", "-p", "{tmp}/new-data", "-m", "v2"],
    "competitions settings get": ["digits"], "competitions settings update": ["digits", "-f", "{tmp}/settings.json"],
    "competitions solution create": ["digits", "-p", "{tmp}/perfect.csv"], "competitions solution status": ["digits"],
    "competitions launch": ["digits"], "competitions init": ["{tmp}/init-competition"],
    "competitions create": ["-p", "{tmp}/new-competition"], "competitions topics list": ["digits"],
    "competitions topics show": ["digits", "1"], "competitions topic-messages": ["digits", "1"],
    "datasets list": ["-m"], "datasets files": [DATASET, "--page-size", "1"],
    "datasets download": [DATASET, "-p", "{tmp}/dataset"], "datasets create": ["-p", "{tmp}/other-dataset"],
    "datasets init": ["-p", "{tmp}/init-dataset"], "datasets metadata": [DATASET, "-p", "{tmp}/metadata"],
    "datasets status": [DATASET], "datasets topics list": [DATASET], "datasets topics show": [DATASET, "1"],
    "kernels list": ["-m"], "kernels files": [KERNEL], "kernels init": ["-p", "{tmp}/init-kernel"],
    "kernels pull": [KERNEL, "-m", "-p", "{tmp}/pulled"], "kernels output": [KERNEL, "-p", "{tmp}/output"],
    "kernels status": [f"{KERNEL}/1"], "kernels logs": [KERNEL], "kernels topics list": [KERNEL],
    "kernels topics show": [KERNEL, "1"],
    # Last: they change what the others read.
    "datasets version": ["-p", "{tmp}/dataset-folder", "-m", "v2"], "kernels push": ["-p", "{tmp}/kernel-folder"],
    "datasets delete": [DATASET, "-y"], "kernels delete": [KERNEL, "-y"],
}
LAST = ("datasets version", "kernels push", "datasets delete", "kernels delete")
# Commands that only write local files (templates): no call to make.
LOCAL = ("competitions init", "datasets init", "kernels init")
# What Kaggle answers a participant who is not the competition's host, or for what a classroom host has none of.
REFUSED = {**{command: "Permission 'competitions.host' was denied" for command in (
    "competitions hosts",
    "competitions host-add", "competitions data update", "competitions settings get", "competitions settings update",
    "competitions solution create", "competitions solution status", "competitions launch")},
    "competitions create": "not imitated by headstart host",
    "competitions episodes": "not a simulation competition", "competitions replay": "not a simulation competition",
    "competitions logs": "not a simulation competition", "competitions topics show": "Topic not found",
    "competitions topic-messages": "Topic not found", "datasets topics show": "Topic not found",
    "kernels topics show": "Topic not found",
    # kaggle 2.2.5 fails these itself, before any request: its `pages` parser passes csv_display to
    # competition_{create,update,delete}_page_cli, which take none (kaggle/cli.py).
    **{f"competitions pages {verb}": "unexpected keyword argument 'csv_display'"
       for verb in ("create", "update", "delete")}}


def cli_commands() -> set[str]:
    """Every leaf command of the CLI's competitions, datasets and kernels groups, read from its own parser."""
    with contextlib.redirect_stdout(io.StringIO()):
        from kaggle import cli
    parser = argparse.ArgumentParser()
    groups = parser.add_subparsers()
    for add in (cli.parse_competitions, cli.parse_datasets, cli.parse_kernels):
        add(groups)

    def leaves(command: argparse.ArgumentParser, prefix: str) -> set[str]:
        nested = [action for action in command._actions if isinstance(action, argparse._SubParsersAction)]
        if not nested:
            return {prefix}
        unique: dict = {}  # a command once, by its first name (`kernels get` is `kernels pull`)
        for name, child in nested[0]._name_parser_map.items():
            unique.setdefault(id(child), (name, child))
        return set().union(*(leaves(child, f"{prefix} {name}") for name, child in unique.values()))

    return set().union(*(leaves(groups._name_parser_map[group], group)
                         for group in ("competitions", "datasets", "kernels")))


def prepare(hosted, tmp_path) -> None:
    """A scored submission, a dataset of two files and a kernel, made through the CLI; folders the commands read."""
    perfect_submission(hosted, tmp_path / "perfect.csv")
    hosted.kaggle("competitions", "submit", "digits", "-f", tmp_path / "perfect.csv", "-m", "first")
    folder = tmp_path / "dataset-folder"
    folder.mkdir()
    (folder / "a.csv").write_text("x\n1\n")
    (folder / "b.csv").write_text("y\n2\n")
    (folder / "dataset-metadata.json").write_text(json.dumps({"id": DATASET, "title": "my dataset",
                                                              "licenses": [{"name": "CC0-1.0"}]}))
    hosted.kaggle("datasets", "create", "-p", folder)
    other = tmp_path / "other-dataset"
    other.mkdir()
    (other / "c.csv").write_text("z\n3\n")
    (other / "dataset-metadata.json").write_text(json.dumps({"id": f"{USER}/other-dataset", "title": "other data",
                                                             "licenses": [{"name": "CC0-1.0"}]}))
    kernel = tmp_path / "kernel-folder"
    kernel.mkdir()
    (kernel / "run.py").write_text("print('hello')\n")
    (kernel / "kernel-metadata.json").write_text(json.dumps({
        "id": KERNEL, "title": "my kernel", "code_file": "run.py", "language": "python", "kernel_type": "script",
        "competition_sources": ["digits"], "dataset_sources": [DATASET]}))
    hosted.kaggle("kernels", "push", "-p", kernel)
    (tmp_path / "page.md").write_text("# FAQ\n")
    for folder in ("init-competition", "init-dataset", "init-kernel"):
        (tmp_path / folder).mkdir()
    (tmp_path / "settings.json").write_text(json.dumps({"title": "digits, renamed"}))
    (tmp_path / "new-data").mkdir()
    (tmp_path / "new-data" / "extra.csv").write_text("x\n")


@pytest.mark.slow  # about 50 runs of the CLI: over a minute on 2 busy cores
def test_every_command_has_a_host_answer(hosted, tmp_path):
    from tasks.host.routes import ROUTES

    assert cli_commands() == set(COMMANDS), "a CLI command without arguments here (or one gone from the CLI)"
    prepare(hosted, tmp_path)
    (tmp_path / "new-competition").mkdir()
    hosted.kaggle("competitions", "init", tmp_path / "new-competition")
    template = tmp_path / "new-competition" / "competition-metadata.json"
    template.write_text(template.read_text().replace("INSERT_TITLE_HERE", "New one").replace(
        "INSERT_SLUG_HERE", "new-one").replace("INSERT_BRIEF_DESCRIPTION_HERE", "A new competition"))

    def run(command: str):
        arguments = [argument.replace("{tmp}", str(tmp_path)) for argument in COMMANDS[command]]
        result = hosted.kaggle(*command.split(), *arguments, check=False, KAGGLE_COMPETITION="digits")
        return command, result.returncode, result.stdout + result.stderr

    first = [command for command in COMMANDS if command not in LAST]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = {command: (code, text) for command, code, text in pool.map(run, first)}
    results.update({command: run(command)[1:] for command in LAST})
    unanswered = sorted(command for command, (_, text) in results.items() if "not supported by headstart" in text)
    assert unanswered == [], f"CLI commands the host has no answer for: {unanswered}"
    assert not [request for request in hosted.host.requests
                if request["rpc"] and request["rpc"] not in ROUTES], "an RPC outside the host's routes"
    refused = {command: expected for command, expected in REFUSED.items() if expected not in results[command][1]}
    assert refused == {}, {command: results[command][1][-300:] for command in refused}
    failed = {command: text[-300:] for command, (code, text) in results.items()
              if code != 0 and command not in REFUSED}
    assert failed == {}
    check_outputs(hosted, tmp_path, results)


def check_outputs(hosted, tmp_path, results: dict) -> None:
    """What the answered commands printed and wrote is what Kaggle's would."""
    text = {command: output for command, (_, output) in results.items()}
    assert "Next Page Token = 2" in text["competitions files"] and "sample_submission.csv" in text["competitions files"]
    assert "userRank" in text["competitions list"]
    assert (tmp_path / "sub" / "1-perfect.csv").read_bytes() == (tmp_path / "perfect.csv").read_bytes()
    assert "1.0" in text["competitions team-submissions"] and USER in text["competitions leaderboard"]
    assert "my-dataset" in text["datasets list"] and "Next Page Token = 1" in text["datasets files"]
    with zipfile.ZipFile(tmp_path / "dataset" / "my-dataset.zip") as zipped:
        assert sorted(zipped.namelist()) == ["a.csv", "b.csv"]
    assert json.loads((tmp_path / "metadata" / "dataset-metadata.json").read_text())["info"]["title"] == "my dataset"
    assert "my-kernel" in text["kernels list"] and KERNEL + "/1 has status" in text["kernels status"]
    pulled = json.loads((tmp_path / "pulled" / "kernel-metadata.json").read_text())
    assert pulled["id"] == KERNEL and pulled["dataset_sources"] == [DATASET] and pulled["competition_sources"] == [
        "digits"]
    assert "Kernel version 2 successfully pushed" in text["kernels push"]
    assert "version is being created" in text["datasets version"]
    assert hosted.host.datasets.exists(USER, "my-dataset") is False
    status, _ = call(hosted.server.url + "/api/v1/kernels.KernelsApiService/GetKernelSessionStatus",
                     {"userName": USER, "kernelSlug": "my-kernel"})
    assert status == 404  # deleted


def test_submission_download_team_submissions_and_file_pages(hosted, tmp_path):
    """DownloadSubmission, ListTeamPublicSubmissions (by the team id the leaderboard shows), ListDataFiles in
    pages, and the caller's rank in the competition's own record (userRank)."""
    path = perfect_submission(hosted, tmp_path / "perfect.csv")
    hosted.backend.submit(path, "mine", team=USER)
    hosted.backend.submit(tmp_path / "perfect.csv", "theirs", team="bob")
    hosted.kaggle("competitions", "submission-download", "1", "-p", tmp_path / "back")
    assert (tmp_path / "back" / "1-perfect.csv").read_bytes() == path.read_bytes()
    board = hosted.kaggle("competitions", "leaderboard", "digits", "--show", "-v").stdout.splitlines()
    team_id = next(line.split(",")[0] for line in board if ",bob," in line)
    assert team_id == "2"  # teams are numbered as they came, not by rank
    assert "2" in hosted.kaggle("competitions", "team-submissions", team_id).stdout
    first = hosted.kaggle("competitions", "files", "digits", "--page-size", "2").stdout
    assert "Next Page Token = 2" in first and "train.csv" not in first
    second = hosted.kaggle("competitions", "files", "digits", "--page-size", "2", "--page-token", "2").stdout
    assert "train.csv" in second and "Next Page Token" not in second
    listed = hosted.kaggle("competitions", "list", "-v").stdout.splitlines()
    assert listed[0].split(",")[-1] == "userRank" and listed[1].split(",")[-1] == "1"


def test_dataset_list_files_download_metadata_and_version_by_id(hosted, tmp_path):
    folder = tmp_path / "dataset-folder"
    folder.mkdir()
    for name in ("a.csv", "b.csv"):
        (folder / name).write_text(f"{name}\n1\n")
    (folder / "dataset-metadata.json").write_text(json.dumps({"id": DATASET, "title": "my dataset",
                                                              "licenses": [{"name": "CC0-1.0"}]}))
    hosted.kaggle("datasets", "create", "-p", folder)
    assert "my-dataset" in hosted.kaggle("datasets", "list", "-m").stdout
    files = hosted.kaggle("datasets", "files", DATASET, "--page-size", "1").stdout
    assert "a.csv" in files and "b.csv" not in files and "Next Page Token = 1" in files
    hosted.kaggle("datasets", "download", DATASET, "-p", tmp_path / "all")
    with zipfile.ZipFile(tmp_path / "all" / "my-dataset.zip") as zipped:
        assert sorted(zipped.namelist()) == ["a.csv", "b.csv"]
    hosted.kaggle("datasets", "download", DATASET, "-f", "b.csv", "-p", tmp_path / "one")
    assert (tmp_path / "one" / "b.csv").read_text() == "b.csv\n1\n"
    hosted.kaggle("datasets", "metadata", DATASET, "-p", tmp_path / "meta")
    metadata = json.loads((tmp_path / "meta" / "dataset-metadata.json").read_text())["info"]  # as the client writes it
    assert metadata["title"] == "my dataset" and metadata["licenses"] == [{"name": "CC0-1.0"}]
    metadata["title"] = "my renamed dataset"
    (tmp_path / "meta" / "dataset-metadata.json").write_text(json.dumps(metadata))
    hosted.kaggle("datasets", "metadata", DATASET, "--update", "-p", tmp_path / "meta")
    assert hosted.host.datasets.record(USER, "my-dataset")["title"] == "my renamed dataset"
    assert hosted.host.datasets.private(USER, "my-dataset") is True  # an update never opens a dataset
    (folder / "dataset-metadata.json").write_text(json.dumps({"id_no": metadata["datasetId"], "title": "my dataset",
                                                              "licenses": [{"name": "CC0-1.0"}]}))
    hosted.kaggle("datasets", "version", "-p", folder, "-m", "by id")
    assert hosted.host.datasets.versions(USER, "my-dataset") == [1, 2]
    assert "datasets.DatasetApiService/CreateDatasetVersionById" in hosted.host.rpcs()


def test_kernel_list_files_pull_push_again_quota_and_delete(hosted, tmp_path):
    """`kaggle kernels pull -m` writes what a push sends again: the second version keeps the kernel's id, sources,
    privacy and accelerator."""
    folder = tmp_path / "kernel"
    folder.mkdir()
    (folder / "run.py").write_text("print('hello')\n")
    settings = {"is_private": False, "enable_gpu": True, "enable_internet": False, "machine_shape": "NvidiaTeslaT4",
                "competition_sources": ["digits"], "keywords": ["gpu"]}
    (folder / "kernel-metadata.json").write_text(json.dumps({
        "id": KERNEL, "title": "my kernel", "code_file": "run.py", "language": "python", "kernel_type": "script",
        **settings}))
    hosted.kaggle("kernels", "push", "-p", folder)
    perfect_submission(hosted, hosted.host.kernels.output_dir(USER, "my-kernel") / "submission.csv")
    assert "my-kernel" in hosted.kaggle("kernels", "list", "-m").stdout
    assert "submission.csv" in hosted.kaggle("kernels", "files", KERNEL).stdout
    hosted.kaggle("kernels", "pull", KERNEL, "-m", "-p", tmp_path / "pulled")
    pulled = json.loads((tmp_path / "pulled" / "kernel-metadata.json").read_text())
    assert pulled["id"] == KERNEL and pulled["id_no"] == 1 and pulled["code_file"] == "my-kernel.py"
    assert {key: pulled[key] for key in settings} == {**settings, "keywords": ["gpu"]}
    hosted.kaggle("kernels", "push", "-p", tmp_path / "pulled")
    again = hosted.host.kernels.record(USER, "my-kernel", 2)
    assert (again["isPrivate"], again["enableGpu"], again["machineShape"]) == (False, True, "NvidiaTeslaT4")
    assert again.get("enableInternet", False) is False and again["competitionDataSources"] == ["digits"]
    status, _ = call(hosted.server.url + "/api/v1/kernels.KernelsApiService/GetKernelSessionStatus",
                     {"userName": USER, "kernelSlug": "my-kernel", "versionLabel": "2"})
    assert status == 404  # Kaggle's labels are v<N>: a bare number names no version
    assert "GPU" in hosted.kaggle("quota").stdout
    hosted.kaggle("kernels", "delete", KERNEL, "-y")
    assert hosted.kaggle("kernels", "status", KERNEL, check=False).returncode == 1


def test_auth_login_through_the_hosts_page(hosted):
    """`kaggle auth login --no-launch-browser`: the printed URL, opened with the user's name and key, shows a code;
    pasted back, the CLI logs in (~/.kaggle/credentials.json) and later commands need no key."""
    import base64
    import subprocess
    import urllib.request

    from tests.hosting import DIRECT, KAGGLE_CLI, KEY

    environment = {name: value for name, value in hosted.env.items() if name not in ("KAGGLE_USERNAME", "KAGGLE_KEY")}
    login = subprocess.Popen([KAGGLE_CLI, "auth", "login", "--no-launch-browser"], env=environment, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=hosted.home)
    while "/oauth2/authorize?" not in (line := login.stdout.readline()):
        assert line, "the CLI printed no authorize URL"
    url = line.strip().replace("http://localhost", hosted.server.url)
    anonymous = urllib.request.Request(url)
    with pytest.raises(urllib.error.HTTPError) as refused:
        DIRECT.open(anonymous)
    assert refused.value.code == 401
    signed_in = urllib.request.Request(url, headers={
        "Authorization": "Basic " + base64.b64encode(f"{USER}:{KEY}".encode()).decode()})
    page = DIRECT.open(signed_in).read().decode()
    code = page.split("verification code: ")[1].split()[0]
    output, _ = login.communicate(code + "\n", timeout=60)
    assert login.returncode == 0 and f"You are now logged in as [{USER}]" in output, output
    assert (hosted.home / ".kaggle" / "credentials.json").is_file()
    listing = subprocess.run([KAGGLE_CLI, "competitions", "submissions", "digits"], env=environment, text=True,
                             capture_output=True, cwd=hosted.home, timeout=60)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    token = subprocess.run([KAGGLE_CLI, "auth", "print-access-token"], env=environment, text=True,
                           capture_output=True, cwd=hosted.home, timeout=60).stdout.strip()
    assert token.startswith("hsat_") and KEY not in token
