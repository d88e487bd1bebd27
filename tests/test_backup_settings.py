"""The backup settings: s3:// URLs and schedules are checked when the settings are read, and
a bad one is refused with a message that says what to write instead."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from pydantic import ValidationError

from latentspace.backup_settings import S3Url, Schedule, parse_s3_url
from latentspace.errors import InvalidInput
from latentspace.settings import BackupSettings, Settings

TARGET = "s3://my-backups/latentspace/"


def test_the_backup_section_reads_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATENTSPACE_BACKUP__ENDPOINT_URL", "http://minio.local:9000")
    monkeypatch.setenv("LATENTSPACE_BACKUP__REGION", "eu-west-1")
    monkeypatch.setenv("LATENTSPACE_BACKUP__ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("LATENTSPACE_BACKUP__SECRET_ACCESS_KEY", "very-secret")
    monkeypatch.setenv("LATENTSPACE_BACKUP__SCHEDULE", "6h")
    monkeypatch.setenv("LATENTSPACE_BACKUP__TARGET", "s3://my-backups/nightly")
    monkeypatch.setenv("LATENTSPACE_BACKUP__KEEP", "3")
    backup = Settings().backup
    assert backup.endpoint_url == "http://minio.local:9000"
    assert backup.region == "eu-west-1"
    assert backup.access_key_id == "AKIAEXAMPLE"
    assert backup.secret_access_key is not None
    assert backup.secret_access_key.get_secret_value() == "very-secret"
    assert "very-secret" not in repr(Settings())  # a secret is never printed
    assert backup.keep == 3
    planned = backup.planned()
    assert planned == (Schedule(every=timedelta(hours=6)), S3Url("my-backups", "nightly/"))


def test_no_schedule_and_empty_values_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATENTSPACE_BACKUP__SCHEDULE", "")
    monkeypatch.setenv("LATENTSPACE_BACKUP__ENDPOINT_URL", "")
    backup = Settings().backup
    assert backup.schedule is None
    assert backup.endpoint_url is None
    assert backup.planned() is None


@pytest.mark.parametrize(
    ("text", "every", "at"),
    [
        ("30m", timedelta(minutes=30), None),
        ("6h", timedelta(hours=6), None),
        ("1d", timedelta(days=1), None),
        (" 90m ", timedelta(minutes=90), None),
        ("daily@02:30", None, time(2, 30)),
        ("daily@23:59", None, time(23, 59)),
    ],
)
def test_schedules_parse(text: str, every: timedelta | None, at: time | None) -> None:
    assert Schedule.parse(text) == Schedule(every=every, at=at)
    assert BackupSettings(schedule=text, target=TARGET).schedule == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5x", "is not a schedule"),
        ("6 h", "is not a schedule"),
        ("-1h", "is not a schedule"),
        ("1.5h", "is not a schedule"),
        ("daily", "is not a schedule"),
        ("daily@24:00", "is not a schedule"),
        ("daily@2:30", "is not a schedule"),
        ("every 6h", "is not a schedule"),
        ("0m", "an interval is 1m to 366d"),
        ("400d", "an interval is 1m to 366d"),
    ],
)
def test_a_bad_schedule_is_refused_saying_what_to_write(
    monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    monkeypatch.setenv("LATENTSPACE_BACKUP__SCHEDULE", text)
    monkeypatch.setenv("LATENTSPACE_BACKUP__TARGET", TARGET)
    with pytest.raises(ValidationError) as refused:
        Settings()
    shown = str(refused.value)
    assert "backup.schedule" in shown
    assert message in shown
    if message == "is not a schedule":
        assert "30m, 6h, 1d" in shown
        assert "daily@02:30" in shown


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"schedule": "6h"}, "LATENTSPACE_BACKUP__SCHEDULE needs LATENTSPACE_BACKUP__TARGET"),
        ({"target": "s3://"}, "names no bucket"),
        ({"target": "gs://bucket/prefix/"}, "only s3:// URLs are supported, not gs://"),
        ({"target": "s3://my-backups/a/../b/"}, "'..' segments"),
        ({"keep": 0}, "greater than or equal to 1"),
        ({"access_key_id": "AKIAEXAMPLE"}, "set both LATENTSPACE_BACKUP__ACCESS_KEY_ID"),
        ({"secret_access_key": "s"}, "set both LATENTSPACE_BACKUP__ACCESS_KEY_ID"),
        ({"endpoint_url": "minio:9000"}, "is not an http:// or https:// URL"),
        ({"addressing_style": "dns"}, "'auto', 'path' or 'virtual'"),
    ],
)
def test_bad_backup_settings_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=None) as refused:
        BackupSettings(**values)  # type: ignore[arg-type]
    assert message in str(refused.value)


def _at(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2030, 1, day, hour, minute, tzinfo=UTC)


def test_an_interval_is_due_once_it_has_passed_since_the_last_run() -> None:
    every = Schedule.parse("6h")
    assert every.due(None, _at(0))  # never backed up: at once
    assert not every.due(_at(0), _at(5, 59))
    assert every.due(_at(0), _at(6))
    assert every.due(_at(0), _at(23))  # late is due, once


def test_a_daily_time_is_due_once_it_has_come_since_the_last_run() -> None:
    daily = Schedule.parse("daily@02:30")
    assert daily.due(None, _at(1))
    assert not daily.due(_at(2, 30), _at(2, 31))  # this slot is done
    assert not daily.due(_at(2, 30), _at(23, 59))
    assert not daily.due(_at(2, 30), _at(2, 29, day=2))  # tomorrow's has not come yet
    assert daily.due(_at(2, 30), _at(2, 30, day=2))
    assert daily.due(_at(2, 30), _at(9, day=4))  # days missed: one run, not three
    assert daily.due(_at(1), _at(2, 30))  # the last ran before today's slot


@pytest.mark.parametrize(
    ("url", "bucket", "key"),
    [
        ("s3://my-backups/photos.lsnap", "my-backups", "photos.lsnap"),
        ("s3://my.backups-2/a/b/c 1.lsnap", "my.backups-2", "a/b/c 1.lsnap"),
        ("s3://my-backups/a..b.lsnap", "my-backups", "a..b.lsnap"),  # '..' inside a name
    ],
)
def test_s3_urls_parse(url: str, bucket: str, key: str) -> None:
    parsed = parse_s3_url(url)
    assert parsed == S3Url(bucket, key)
    assert str(parsed) == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://", "names no bucket"),
        ("s3:///key.lsnap", "names no bucket"),
        ("s3://my-backups", "names no object"),
        ("s3://my-backups/", "names no object"),
        ("s3://my-backups/folder/", "names a folder, not an object"),
        ("s3://my-backups/../etc/passwd", "'..' segments"),
        ("s3://my-backups/a/./b", "'.' or '..' segments"),
        ("s3://my-backups//a", "empty, '.' or '..' segments"),
        ("s3://my-backups/a\x00b", "control characters"),
        ("s3://My_Backups/a", "is not a bucket name"),
        ("s3://ab/a", "is not a bucket name"),
        ("s3://127.0.0.1/a", "is not a bucket name"),
        ("s3://my-backups/" + "k" * 1025, "at most 1024 bytes"),
        ("gs://my-backups/a", "only s3:// URLs are supported, not gs://"),
        ("https://s3.amazonaws.com/my-backups/a", "not https://"),
        ("/tmp/photos.lsnap", "is not an s3:// URL"),
    ],
)
def test_bad_s3_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=None) as refused:
        parse_s3_url(url)
    assert message in str(refused.value)


def test_a_folder_url_may_name_the_whole_bucket() -> None:
    assert parse_s3_url("s3://my-backups", folder=True) == S3Url("my-backups", "")
    assert parse_s3_url("s3://my-backups/a/b", folder=True) == S3Url("my-backups", "a/b/")
    assert parse_s3_url("s3://my-backups/a/", folder=True).child("x.lsnap") == S3Url(
        "my-backups", "a/x.lsnap"
    )
