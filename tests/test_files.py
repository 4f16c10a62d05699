"""The kit's own files: a JSON-lines log survives a writer killed mid-line (issue 12)."""

import json
import threading

import pytest

from tasks.errors import CorruptFileError
from tasks.files import JsonLines

TORN = b'{"ref": 1}\n{"ref": 2}\n{"ref": 3, "date": "2026-'


def test_a_torn_last_line_is_skipped_then_cut_off_by_the_next_append(tmp_path):
    log = JsonLines(tmp_path / "submissions.jsonl")
    log.path.write_bytes(TORN)
    assert log.read() == [{"ref": 1}, {"ref": 2}]
    log.append({"ref": 3})
    assert log.path.read_bytes() == b'{"ref": 1}\n{"ref": 2}\n{"ref": 3}\n'


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path):
    log = JsonLines(tmp_path / "log.jsonl")
    log.path.write_bytes(b'{"ref": 1}\n{"ref": 2}')
    assert log.read() == [{"ref": 1}, {"ref": 2}]
    log.append({"ref": 3})
    assert [record["ref"] for record in log.read()] == [1, 2, 3]


def test_a_torn_line_longer_than_a_block_is_cut_whole(tmp_path):
    log = JsonLines(tmp_path / "log.jsonl")
    log.path.write_bytes(b'{"ref": 1}\n{"header": "' + b"x" * 200_000)
    log.append({"ref": 2})
    assert log.read() == [{"ref": 1}, {"ref": 2}]


def test_a_damaged_line_in_the_middle_is_named(tmp_path):
    log = JsonLines(tmp_path / "log.jsonl")
    log.path.write_bytes(b'{"ref": 1}\nnot json\n{"ref": 3}\n')
    with pytest.raises(CorruptFileError, match=r"log\.jsonl: line 2 is not a JSON record"):
        log.read()


def test_append_inside_a_locked_check_does_not_deadlock_and_threads_still_exclude(tmp_path):
    log = JsonLines(tmp_path / "log.jsonl")
    order = []

    def writer(name: str) -> None:
        with log.locked():
            order.append(f"{name}-start")
            log.append({"name": name})
            order.append(f"{name}-end")

    threads = [threading.Thread(target=writer, args=(name,)) for name in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(log.read()) == 4
    assert all(order[index].split("-")[0] == order[index + 1].split("-")[0] for index in range(0, 8, 2))
    assert json.loads(log.path.read_text().splitlines()[0])["name"] in "abcd"
