"""The host against a hostile participant (issue 12): names that would be paths, signatures, hidden scores."""

import base64
import json
import urllib.error
import urllib.request

from tests.hosting import KEY, USER, hosted, hosted_factory  # noqa: F401

KERNELS = "/api/v1/kernels.KernelsApiService/"
DATASETS = "/api/v1/datasets.DatasetApiService/"


def post(hosted, rpc: str, payload: dict, user: str = USER, key: str = KEY) -> tuple[int, dict]:
    """One RPC straight to the host, as the client sends it; (status, JSON answer)."""
    credentials = base64.b64encode(f"{user}:{key}".encode()).decode()
    request = urllib.request.Request(hosted.server.url + rpc, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Authorization": f"Basic {credentials}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


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
