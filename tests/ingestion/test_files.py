"""File sources: files taken in once, moved aside, bad files quarantined with their reason."""
import os
import time

import orjson
import pytest

from ingestion.files import file_source_scan
from ingestion.models import FileQuarantine, IngestedFile, Record, ValidationFailure
from tests.conftest import FILE_DESTINATION, ROUTE_ALL_TO_ARCHIVE
from tests.pipeline.test_services import good_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def inbox(tmp_path, apply_config):
    folder = tmp_path / "inbox"
    folder.mkdir()
    source = {
        "source_id": "file_source_1", "source_type": "file", "enabled": True,
        "connection": {"path": str(folder)}, "parsing": {"format": "jsonl"},
        "validation": {"required_fields": ["id"]},
    }
    apply_config(sources=[source], destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])
    return folder


def settle(path):
    old = time.time() - 10
    os.utime(path, (old, old))


def write(folder, name, data: bytes):
    path = folder / name
    path.write_bytes(data)
    settle(path)
    return path


def test_jsonl_csv_and_json_files_are_ingested_and_moved(inbox):
    write(inbox, "a.jsonl", b"\n".join(orjson.dumps(good_record(i)) for i in range(3)))
    write(inbox, "b.csv", b"id,amount\nx1,5\nx2,6\n")
    write(inbox, "c.json", orjson.dumps([good_record(9)]))
    assert file_source_scan(source_id="file_source_1") == {"ingested": 3, "quarantined": 0, "duplicates": 0}
    assert Record.objects.count() == 6
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == ["a.jsonl", "b.csv", "c.json"]
    assert not any(p.is_file() for p in inbox.iterdir())


def test_bad_lines_are_rejected_records_and_unreadable_files_quarantined(inbox):
    write(inbox, "mixed.jsonl", b'{"id": "ok"}\n{broken\n{"no_id": 1}\n')
    write(inbox, "ragged.csv", b"id,amount\n1,2\n3\n")
    write(inbox, "garbage.json", b"\xff\xfe not json")
    result = file_source_scan(source_id="file_source_1")
    assert result == {"ingested": 2, "quarantined": 1, "duplicates": 0}
    codes = sorted(ValidationFailure.objects.values_list("error_code", flat=True))
    assert codes == ["MISSING_REQUIRED_FIELD", "PARSE_ERROR", "PARSE_ERROR"]
    ragged = ValidationFailure.objects.get(error_code="PARSE_ERROR", message__contains="fields")
    assert "row 3" in ragged.message
    quarantine = FileQuarantine.objects.get()
    assert quarantine.file_name == "garbage.json" and "malformed JSON" in quarantine.reason
    assert (inbox / "quarantine" / "garbage.json").exists()
    assert "malformed JSON" in (inbox / "quarantine" / "garbage.json.reason.txt").read_text()


def test_a_file_seen_again_after_a_crash_is_not_ingested_twice(inbox):
    path = write(inbox, "a.jsonl", orjson.dumps(good_record(1)))
    file_source_scan(source_id="file_source_1")
    # The worker died after committing but before moving the file: the same file is back in the inbox.
    (inbox / "processed" / "a.jsonl").replace(path)
    settle(path)
    assert file_source_scan(source_id="file_source_1")["duplicates"] == 1
    assert Record.objects.count() == 1 and IngestedFile.objects.count() == 1


def test_files_still_being_written_wait(inbox):
    (inbox / "fresh.jsonl").write_bytes(orjson.dumps(good_record(1)))
    assert file_source_scan(source_id="file_source_1")["ingested"] == 0
