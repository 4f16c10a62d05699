"""The kernel RPCs `kaggle kernels ...` and `kaggle quota` make, answered from the host's KernelStore.

Each handler takes (host, user, request) in kagglesdk's types and answers in them (tasks/host/rpc.py); every one
applies the host's one access rule (owner, or public). What `kaggle kernels pull -m` writes is what a push sends
again, so a pulled kernel pushed back keeps its id, sources, privacy and accelerator (KaggleApi.kernels_pull).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from kagglesdk.kernels.types.kernels_api_service import (
    ApiAcceleratorQuota,
    ApiDeleteKernelResponse,
    ApiGetAcceleratorQuotaStatisticsResponse,
    ApiGetKernelResponse,
    ApiGetKernelSessionStatusResponse,
    ApiKernelBlob,
    ApiKernelMetadata,
    ApiKernelSessionOutputFile,
    ApiListKernelFilesItem,
    ApiListKernelFilesResponse,
    ApiListKernelSessionOutputResponse,
    ApiListKernelsResponse,
)
from kagglesdk.kernels.types.kernels_enums import KernelWorkerStatus

from tasks.host.common import may_read, page_of
from tasks.host.kernels import KERNELS, version_label
from tasks.host.outputs import unservable
from tasks.host.rpc import make, naive_utc

# What kernel-metadata.json keeps, as ApiKernelMetadata names it (the push request's names, snake_case here).
COPIED = ("language", "kernel_type", "is_private", "enable_gpu", "enable_tpu", "enable_internet", "category_ids",
          "dataset_data_sources", "kernel_data_sources", "competition_data_sources", "model_data_sources",
          "docker_image", "machine_shape")


def _snake(name: str) -> str:
    return "".join(f"_{character.lower()}" if character.isupper() else character for character in name)


def metadata_object(host, owner: str, slug: str, directory: Path) -> ApiKernelMetadata:
    """A version's kernel-metadata as GetKernel and ListKernels answer it."""
    record = {_snake(key): value for key, value in json.loads((directory / "kernel.json").read_text()).items()}
    fields = {name: record.get(name) for name in COPIED}
    fields["is_private"] = record.get("is_private", True)  # the client omits it at its default (true)
    ended = record.get("ended")
    return make(ApiKernelMetadata, id=host.kernels.kernel_id(owner, slug), ref=f"{owner}/{slug}", slug=slug,
                title=record.get("new_title") or slug, author=owner, current_version_number=int(directory.name),
                last_run_time=naive_utc(datetime.fromtimestamp(ended, timezone.utc)) if ended else None, **fields)


def status(host, user: str, request) -> ApiGetKernelSessionStatusResponse:
    directory = host.kernels.readable(user, request.user_name, request.kernel_slug, version_label(request.version_label))
    record = json.loads((directory / "kernel.json").read_text())
    return make(ApiGetKernelSessionStatusResponse, status=KernelWorkerStatus[record["status"]],
                failure_message=record.get("failureMessage", ""))


def _output_names(working: Path) -> list[str]:
    return [path.relative_to(working).as_posix() for path in sorted(working.rglob("*"))
            if path.is_file() and not path.is_symlink() and unservable(path.relative_to(working).as_posix()) is None]


def output(host, user: str, request) -> ApiListKernelSessionOutputResponse:
    """The version's output files (signed URLs), in pages, and its log (with the first page)."""
    owner, slug = request.user_name, request.kernel_slug
    directory = host.kernels.readable(user, owner, slug, version_label(request.version_label))
    version = int(directory.name)
    names, token = page_of(_output_names(directory / "working"), request)
    files = [make(ApiKernelSessionOutputFile, file_name=name,
                  url=host.file_url(user, f"kernel-output/{owner}/{slug}/{version}/{name}")) for name in names]
    first = not request.page_token
    log = (directory / "log.json").read_text() if first and (directory / "log.json").is_file() else ""
    return make(ApiListKernelSessionOutputResponse, files=files, log=log, next_page_token=token)


def pull(host, user: str, request) -> ApiGetKernelResponse:
    owner, slug = request.user_name, request.kernel_slug
    directory = host.kernels.readable(user, owner, slug, version_label(request.version_label))
    record = json.loads((directory / "kernel.json").read_text())
    language, kernel_type = record.get("language"), record.get("kernelType")
    return make(ApiGetKernelResponse, metadata=metadata_object(host, owner, slug, directory),
                blob=make(ApiKernelBlob, source=(directory / record["source"]).read_text(), language=language,
                          kernel_type=kernel_type, slug=slug))


def _matches(record: dict, owner: str, slug: str, user: str, request) -> bool:
    """Whether a kernel answers a ListKernels request: mine (group PROFILE), a user's, a competition's or a
    dataset's, a language, a type, a search."""
    group = getattr(request.group, "name", "")
    checks = [group != "KERNELS_LIST_VIEW_TYPE_PROFILE" or owner == user,
              not request.user or owner == request.user,
              not request.competition or request.competition in record.get("competitionDataSources", []),
              not request.dataset or any(ref.startswith(request.dataset) for ref in record.get("datasetDataSources", [])),
              request.language in ("", "all", None) or record.get("language") == request.language,
              request.kernel_type in ("", "all", None) or record.get("kernelType") == request.kernel_type,
              not request.search or request.search.lower() in f"{slug} {record.get('newTitle', '')}".lower()]
    return all(checks)


def list_kernels(host, user: str, request) -> ApiListKernelsResponse:
    """The kernels this user may read that match the request, newest push first, in pages."""
    found = []
    for owner, slug in host.kernels.kernels():
        directory = host.kernels.directory(owner, slug)
        record = json.loads((directory / "kernel.json").read_text())
        if may_read(user, owner, record.get("isPrivate", True)) and _matches(record, owner, slug, user, request):
            found.append((record.get("pushed", 0), owner, slug, directory))
    found.sort(key=lambda item: -item[0])
    if request.page and not request.page_token:  # the CLI's -p N: the page number, as Kaggle takes it
        request.page_token = str((request.page - 1) * (request.page_size or 20))
    page, token = page_of(found, request)
    return make(ApiListKernelsResponse, kernels=[metadata_object(host, owner, slug, directory)
                                                 for _, owner, slug, directory in page], next_page_token=token)


def list_files(host, user: str, request) -> ApiListKernelFilesResponse:
    """`kaggle kernels files`: the version's output files, their sizes and dates, in pages."""
    directory = host.kernels.readable(user, request.user_name, request.kernel_slug,
                                      version_label(request.version_label))
    working = directory / "working"
    names, token = page_of(_output_names(working), request)
    items = [make(ApiListKernelFilesItem, name=name, size=(working / name).stat().st_size,
                  creation_date=datetime.fromtimestamp((working / name).stat().st_mtime, timezone.utc)
                  .strftime("%Y-%m-%dT%H:%M:%S.%fZ")) for name in names]
    return make(ApiListKernelFilesResponse, files=items, next_page_token=token)


def delete(host, user: str, request) -> ApiDeleteKernelResponse:
    host.kernels.delete(user, request.user_name, request.kernel_slug)
    return make(ApiDeleteKernelResponse)


def week_start(now: datetime) -> datetime:
    """The start of the host's quota week: Monday 00:00 UTC (Kaggle says when its own refreshes in quotaRefreshTime;
    this host names its own there)."""
    days = now.weekday()
    return (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)


def quota(host, user: str, request) -> ApiGetAcceleratorQuotaStatisticsResponse:
    """`kaggle quota`: this week's GPU and TPU time of the user's kernels, of the host's weekly allowance (the
    host runs every kernel on its CPUs; a kernel pushed with enable_gpu or enable_tpu counts as Kaggle counts it)."""
    now = datetime.now(timezone.utc)
    start = week_start(now).timestamp()
    used = {"enableGpu": 0.0, "enableTpu": 0.0}
    for owner, slug in host.kernels.kernels():
        if owner != user:
            continue
        for version in host.kernels.versions(owner, slug):
            record = host.kernels.record(owner, slug, version)
            began, ended = record.get("started"), record.get("ended") or now.timestamp()
            for flag in used:
                if record.get(flag) and began and ended > start:
                    used[flag] += ended - max(began, start)
    settings = host.settings

    def allowance(seconds: float, flag: str) -> ApiAcceleratorQuota:
        return make(ApiAcceleratorQuota, time_used=timedelta(seconds=round(used[flag])),
                    total_time_allowed=timedelta(seconds=seconds), has_ever_run=used[flag] > 0)

    return make(ApiGetAcceleratorQuotaStatisticsResponse,
                quota_refresh_time=naive_utc(week_start(now) + timedelta(days=7)),
                gpu_quota=allowance(settings.gpu_quota_seconds, "enableGpu"),
                tpu_quota=allowance(settings.tpu_quota_seconds, "enableTpu"))


def save(host, user: str, request):
    return host.kernels.save(user, request)


KERNEL_ROUTES = {KERNELS + name: handler for name, handler in {
    "SaveKernel": save, "GetKernelSessionStatus": status, "ListKernelSessionOutput": output, "GetKernel": pull,
    "ListKernels": list_kernels, "ListKernelFiles": list_files, "DeleteKernel": delete,
    "GetAcceleratorQuotaStatistics": quota}.items()}


LOG_STREAM_PATH = "/api/v1/kernels/logs/stream/{owner}/{slug}"  # `kaggle kernels logs -f` (not an RPC: a GET)
END_OF_LOG = "END_OF_LOG"  # the stream's last event, as the client expects it (KaggleApi.kernels_logs_stream)


async def log_events(host, directory: Path, poll_seconds: float = 0.5):
    """Server-sent events of a kernel's stdout and stderr as its run writes them, `{stream_name, time, data}` each,
    then END_OF_LOG once it has ended."""
    import asyncio

    positions = {"stdout": 0, "stderr": 0}
    while True:
        ended = json.loads((directory / "kernel.json").read_text())["status"] not in ("QUEUED", "RUNNING")
        for stream in positions:
            path = directory / f"{stream}.txt"
            if not path.is_file():
                continue
            with open(path, "rb") as handle:
                handle.seek(positions[stream])
                chunk = handle.read()
            complete = chunk if ended else chunk[:chunk.rfind(b"\n") + 1]
            positions[stream] += len(complete)
            for line in complete.decode("utf-8", errors="replace").splitlines():
                event = {"stream_name": stream, "time": datetime.now(timezone.utc).timestamp(), "data": line + "\n"}
                yield f"data: {json.dumps(event)}\n\n"
        if ended:
            yield f"data: {END_OF_LOG}\n\n"
            return
        await asyncio.sleep(poll_seconds)
