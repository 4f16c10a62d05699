"""The host against a hostile participant's requests (issue 12): names that would be paths, signatures, hidden
scores, a torn log. The attacks of issue 22 are in tests/test_host_security.py."""

import urllib.error
import urllib.request
from datetime import datetime

import pytest

from tests.hosting import DATASETS, KERNELS, KEY, USER, call, perfect_submission


def post(hosted, rpc: str, payload: dict, user: str = USER, key: str = KEY) -> tuple[int, dict]:
    return call(hosted.server.url + rpc, payload, user=user, key=key)


def _everything_under(root) -> set:
    return {path.relative_to(root) for path in root.rglob("*")} if root.exists() else set()


BAD_KERNEL_SLUGS = [
    f"{USER}/../../../../tmp/escape",
    f"{USER}/../../../../../../escape",  # from kernels/alice/ up to the test's own folder
    f"{USER}/Upper-Case",
    f"{USER}/tiny",  # under the client's 5 characters
    f"{USER}/-dash-first",
]


def test_kernel_slugs_are_checked_before_anything_is_written(hosted, tmp_path):
    """SaveKernel, run or quick save: a slug that is not a Kaggle slug is a 400 naming it, and nothing is written."""
    before = _everything_under(hosted.data_dir)
    for slug in BAD_KERNEL_SLUGS:
        for execution in ({}, {"kernelExecutionType": "QUICK_SAVE"}):
            payload = {"slug": slug, "text": "print(1)", "language": "python", "kernelType": "script", **execution}
            status, answer = post(hosted, KERNELS + "SaveKernel", payload)
            assert status == 400 and answer["code"] == 400 and "Invalid kernel slug" in answer["message"], slug
    assert _everything_under(hosted.data_dir) == before
    assert not (tmp_path / "escape").exists()


def test_kernel_and_dataset_reads_refuse_names_that_are_paths(hosted):
    status, answer = post(hosted, KERNELS + "GetKernelSessionStatus", {"userName": "..", "kernelSlug": "kernels"})
    assert status == 400 and "Invalid owner" in answer["message"]
    status, answer = post(hosted, KERNELS + "GetKernel", {"userName": USER, "kernelSlug": "../../.."})
    assert status == 400 and "Invalid kernel slug" in answer["message"]
    status, answer = post(hosted, KERNELS + "GetKernelSessionStatus",
                          {"userName": USER, "kernelSlug": "tiny-kernel", "versionLabel": "v../1"})
    assert status == 400 and "Invalid version" in answer["message"]
    status, answer = post(hosted, DATASETS + "GetDatasetStatus", {"ownerSlug": USER, "datasetSlug": ".."})
    assert status == 400 and "Invalid dataset slug" in answer["message"]
    before = _everything_under(hosted.data_dir)
    status, answer = post(hosted, DATASETS + "CreateDataset", {"ownerSlug": USER, "slug": "../../../escaped",
                                                               "files": []})
    assert status == 400 and "Invalid dataset slug" in answer["message"]
    assert _everything_under(hosted.data_dir) == before


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _put(url: str, data: bytes) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method="PUT")) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _with_path(url: str, path: str) -> str:
    """The same query (user, expiry, signature) on another path of the same host."""
    scheme, _, address, rest = url.split("/", 3)
    return f"{scheme}//{address}/{path}?{rest.partition('?')[2]}"


def test_an_upload_signature_downloads_nothing(hosted_factory):
    """bob has not accepted the rules: the URL he gets for his own dataset blob does not open the data."""
    hosted = hosted_factory(run_kernels=False, rules_accepted_by=(USER,), users=((USER, KEY), ("bob", "bob-key")))
    status, upload = post(hosted, "/api/v1/blobs.BlobApiService/StartBlobUpload", {"name": "w.bin"},
                          user="bob", key="bob-key")
    assert status == 200
    assert _get(_with_path(upload["createUrl"], "files/digits/digits.zip")) == 404
    assert _get(_with_path(upload["createUrl"], f"upload/{upload['token']}")) == 404  # not a download URL
    assert _get(hosted.host.file_url(USER, "files/digits/digits.zip")) == 200  # alice's own is fine


def test_one_user_cannot_write_to_anothers_upload(hosted_factory):
    hosted = hosted_factory(run_kernels=False, users=((USER, KEY), ("bob", "bob-key")))
    rpc = "/api/v1/competitions.CompetitionApiService/StartSubmissionUpload"
    _, alices = post(hosted, rpc, {"competitionName": "digits", "fileName": "a.csv"})
    _, bobs = post(hosted, rpc, {"competitionName": "digits", "fileName": "b.csv"}, user="bob", key="bob-key")
    assert _put(_with_path(bobs["createUrl"], f"upload/{alices['token']}"), b"ImageId,Label\n") == 404
    assert _put(alices["createUrl"], b"ImageId,Label\n") == 200
    assert hosted.host.upload(alices["token"], USER).read_bytes() == b"ImageId,Label\n"


def test_signed_urls_expire(hosted_factory):
    hosted = hosted_factory(run_kernels=False, signed_url_seconds=-1)  # expired as soon as handed out
    url = hosted.host.file_url(USER, "files/digits/digits.zip")
    assert _get(url) == 403
    forged = url.replace("expires=", "expires=9")  # a later expiry breaks the signature
    assert _get(forged) == 404


def _private_scores(hosted) -> list:
    status, listing = post(hosted, "/api/v1/competitions.CompetitionApiService/ListSubmissions",
                           {"competitionName": "digits"})
    _, single = post(hosted, "/api/v1/competitions.CompetitionApiService/GetSubmission", {"ref": 1})
    assert status == 200
    return [submission.get("privateScore", "") for submission in listing["submissions"]] + \
        [single.get("privateScore", "")]


@pytest.mark.parametrize("deadline, shown", [(None, False), (datetime(2001, 1, 1), True),
                                              (datetime(2098, 1, 1), False)], ids=["none", "past", "future"])
def test_private_scores_are_hidden_until_the_deadline(hosted_factory, tmp_path, deadline, shown):
    hosted = hosted_factory(run_kernels=False, deadline=deadline)
    hosted.backend.submit(perfect_submission(hosted, tmp_path / "perfect.csv"), "perfect", team=USER)
    assert _private_scores(hosted) == (["1.0", "1.0"] if shown else ["", ""])


def test_a_torn_submission_log_breaks_no_call(hosted, tmp_path):
    hosted.backend.submit(perfect_submission(hosted, tmp_path / "perfect.csv"), "one", team=USER)
    with open(hosted.backend.log.path, "ab") as stream:
        stream.write(b'{"ref": 2, "team": "alice", "da')  # a writer killed mid-line
    rpc = "/api/v1/competitions.CompetitionApiService/"
    status, listing = post(hosted, rpc + "ListSubmissions", {"competitionName": "digits"})
    assert status == 200 and [submission["ref"] for submission in listing["submissions"]] == [1]
    assert post(hosted, rpc + "GetLeaderboard", {"competitionName": "digits"})[0] == 200
    assert hosted.backend.submit(tmp_path / "perfect.csv", "two", team=USER)["ref"] == 2
    assert [record["ref"] for record in hosted.backend.submissions()] == [1, 2]
