"""Tests for scripts/atomic_write.py: the pattern directly, the demo in-process, then the script.

The pattern's promise is checked from inside the write: a chunk source that looks at the path
between two chunks sees what any reader would see at that moment, with no thread and no timing.
"""

import json
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

import atomic_write
from atomic_write import sample_chunks, write_atomically, write_in_place
from conftest import Invocation, ScriptRunner

Invoke = Callable[..., Invocation]
LOG_LINE = re.compile(r'10\.0\.\d\.\d+ - - \[[^\]]+\] "GET /\S* HTTP/1\.1" (200|304|404|503) \d+')


def names(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the pattern ---------------------------------------------------------------------------------


@pytest.fixture
def old_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.txt"
    path.write_bytes(b"old\n")
    return path


def test_replaces_the_file_with_the_chunks(old_file: Path) -> None:
    write_atomically(old_file, [b"new ", b"content\n"])
    assert old_file.read_bytes() == b"new content\n"
    assert names(old_file.parent) == ["data.txt"]


def test_writes_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "new.txt"
    write_atomically(path, iter([b"a\n", b"b\n"]))
    assert path.read_bytes() == b"a\nb\n"
    assert names(tmp_path) == ["new.txt"]


@pytest.mark.parametrize(
    ("write", "seen_mid_write"),
    [(write_atomically, b"old\n"), (write_in_place, b"")],
    ids=["atomic: the old file", "in place: part of the new one"],
)
def test_what_a_reader_sees_before_the_write_ends(
    old_file: Path, write: Callable, seen_mid_write: bytes
) -> None:
    """The chunk source reads the path between two chunks, as a reader could at that moment."""
    seen: list[bytes] = []

    def chunks() -> Iterator[bytes]:
        yield b"first half\n"
        seen.append(old_file.read_bytes())  # whatever Python has not yet handed to the OS aside
        yield b"second half\n"

    write(old_file, chunks())
    assert seen == [seen_mid_write]
    assert old_file.read_bytes() == b"first half\nsecond half\n"


def test_the_temporary_file_is_hidden_beside_the_target(old_file: Path) -> None:
    listed: list[list[str]] = []

    def chunks() -> Iterator[bytes]:
        yield b"new\n"
        listed.append(names(old_file.parent))

    write_atomically(old_file, chunks())
    temp = [name for name in listed[0] if name != "data.txt"]
    assert len(temp) == 1
    assert re.fullmatch(r"\.data\.txt\.[0-9a-f]{8}\.tmp", temp[0])


@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failure_part_way_leaves_the_old_file_and_nothing_else(
    old_file: Path, failure: BaseException
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"half of the new"
        raise failure

    with pytest.raises(type(failure)):
        write_atomically(old_file, chunks())
    assert old_file.read_bytes() == b"old\n"
    assert names(old_file.parent) == ["data.txt"]


def test_a_failure_on_a_new_path_leaves_no_file(tmp_path: Path) -> None:
    def disk_full_halfway() -> Iterator[bytes]:
        yield from sample_chunks(1_000)
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomically(tmp_path / "new.txt", disk_full_halfway())
    assert names(tmp_path) == []


def test_a_missing_directory_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomically(tmp_path / "missing" / "new.txt", [b"x"])
    assert names(tmp_path) == []


def test_a_replaced_file_keeps_its_permissions(old_file: Path) -> None:
    old_file.chmod(0o640)
    write_atomically(old_file, [b"new\n"])
    assert mode(old_file) == 0o640


def test_a_new_file_gets_the_permissions_open_gives(tmp_path: Path) -> None:
    """Not the 0o600 of a tempfile.mkstemp() file: others may need to read it."""
    usual = tmp_path / "usual.txt"
    usual.write_bytes(b"")
    write_atomically(tmp_path / "new.txt", [b"x"])
    assert mode(tmp_path / "new.txt") == mode(usual)


def test_the_data_then_the_rename_reach_the_disk(
    old_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync the file before the rename, and its directory after: record each fsync as it comes."""
    real_fsync = os.fsync
    synced: list[tuple[str, bytes]] = []

    def recording(fd: int) -> None:
        kind = "directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        synced.append((kind, old_file.read_bytes()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording)
    write_atomically(old_file, [b"new\n"])
    assert synced == [("file", b"old\n"), ("directory", b"new\n")]


# --- the demo, in-process ------------------------------------------------------------------------


def test_sample_is_a_deterministic_access_log_in_chunks() -> None:
    chunks = list(sample_chunks(2_500))
    assert [chunk.count(b"\n") for chunk in chunks] == [1_000, 1_000, 500]
    assert chunks[0] == b"".join(sample_chunks(1_000))  # same seed, same lines
    assert chunks[0] != b"".join(sample_chunks(1_000, seed=8))
    for line in b"".join(chunks).decode().splitlines():
        assert LOG_LINE.fullmatch(line), line


def test_the_demo_compares_the_two_ways(invoke: Invoke) -> None:
    result = invoke(atomic_write.run, "--lines", "4000", "--json")
    assert result.code == 0, result.stderr
    assert result.stderr == "writing 4,000 lines in place, then atomically (see --help)\n"
    payload = json.loads(result.stdout)
    trials = {trial["method"]: trial for trial in payload["trials"]}
    size = len(b"".join(sample_chunks(4_000)))
    assert payload["lines"] == 4_000
    assert sorted(trials) == ["atomic", "in place"]
    for trial in trials.values():
        assert sorted(trial) == ["bytes", "mb_per_s", "method", "reads_old", "reads_partial"]
        assert trial["bytes"] == size
        assert trial["mb_per_s"] > 0
    assert trials["atomic"]["reads_partial"] == 0  # in place: how many depends on the timing


def test_the_demo_table_for_people(invoke: Invoke) -> None:
    result = invoke(atomic_write.run, "--lines", "2000")
    assert result.code == 0, result.stderr
    assert "Replacing a log with 2,000 lines while a reader polls it" in result.stdout
    assert "reads of the old file" in result.stdout
    rows = [line for line in result.stdout.splitlines() if "in place" in line or "atomic" in line]
    assert len(rows) == 2
    assert re.search(r"atomic\W+[\d,]+\W+\d+\W+0\W*$", rows[1]), rows[1]  # no partial read


def test_ctrl_c_in_the_demo_names_what_was_measured(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def interrupted(path: Path, chunks: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setitem(atomic_write.WRITERS, "atomic", interrupted)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = invoke(atomic_write.run, "--lines", "2000")
    assert (result.code, result.stdout) == (130, "")
    message = result.stderr.splitlines()[-1]
    assert re.fullmatch(r"interrupted; in place: [\d,]+ partial reads?", message), message
    assert names(tmp_path) == []  # the demo's temporary directory is gone


def test_output_writes_the_users_file_safely(invoke: Invoke, old_file: Path) -> None:
    old_file.chmod(0o640)
    result = invoke(atomic_write.run, "--output", str(old_file), "--lines", "2500", "--json")
    assert result.code == 0, result.stderr
    assert result.stderr == f"writing 2,500 lines to {old_file}\n"
    payload = json.loads(result.stdout)
    assert payload["mb_per_s"] > 0
    assert payload == {
        "file": str(old_file),
        "lines": 2_500,
        "bytes": old_file.stat().st_size,
        "mb_per_s": payload["mb_per_s"],
    }
    assert old_file.read_bytes() == b"".join(sample_chunks(2_500))
    assert mode(old_file) == 0o640
    assert names(old_file.parent) == ["data.txt"]


def test_one_line_is_not_lines(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "one.log"
    result = invoke(atomic_write.run, "--output", str(path), "--lines", "1")
    assert result.stderr == f"writing 1 line to {path}\n"
    assert result.stdout.startswith(f"wrote 1 line ({path.stat().st_size:,} bytes, ")
    assert " MB/s generated and written) to " in result.stdout


def test_an_unwritable_output_names_the_file_that_failed(invoke: Invoke) -> None:
    """Regression: creating the temporary file failed with a reason but no path."""
    result = invoke(atomic_write.run, "--output", "/proc/version", "--lines", "10")
    assert (result.code, result.stdout) == (1, "")
    message = result.stderr.splitlines()[-1]
    assert re.fullmatch(
        r"error: cannot write /proc/version: /proc/\.version\.\w+\.tmp: No such file or directory",
        message,
    ), message


def test_ctrl_c_counts_the_lines_written_without_a_terminal(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Regression: with stderr not a terminal the disabled bar stopped counting (13,000 of 20M)."""

    def three_chunks_then_ctrl_c(path: Path, chunks: Iterable[bytes]) -> None:
        source = iter(chunks)
        for _ in range(3):
            next(source)
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic_write, "write_atomically", three_chunks_then_ctrl_c)
    result = invoke(atomic_write.run, "--output", str(tmp_path / "a.log"), "--lines", "10000")
    assert result.code == 130
    message = result.stderr.splitlines()[-1]
    assert message == "interrupted after 2,000 of 10,000 lines; no half-written file left"


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("fifo", "is a symlink or not a regular file"),
        ("link", "is a symlink or not a regular file"),
        ("missing/", "is not a file in an existing folder"),
        ("missing/a.log", "is not a file in an existing folder"),
    ],
)
def test_output_refuses_what_the_rename_would_wrongly_replace(
    invoke: Invoke, old_file: Path, target: str, problem: str
) -> None:
    """Regression: a FIFO or a symlink became a regular file; `sub/` wrote a file named sub."""
    os.mkfifo(old_file.parent / "fifo")
    (old_file.parent / "link").symlink_to(old_file)
    path = f"{old_file.parent}/{target}"
    message = invoke(atomic_write.run, "--output", path).assert_usage_error("'--output'")
    assert problem in message
    assert stat.S_ISFIFO((old_file.parent / "fifo").stat().st_mode)
    assert (old_file.parent / "link").is_symlink()
    assert old_file.read_bytes() == b"old\n"


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["--lines", "0"], "'--lines'"),
        (["--lines", "many"], "'--lines'"),
        (["--output", "DIR"], "'--output'"),  # a directory
        (["--output"], "--output"),  # no value
        (["--colour"], "--colour"),
    ],
)
def test_bad_arguments_are_usage_errors(
    invoke: Invoke, tmp_path: Path, args: list[str], argument: str
) -> None:
    args = [str(tmp_path) if arg == "DIR" else arg for arg in args]
    invoke(atomic_write.run, *args).assert_usage_error(argument)


# --- the script, as a user runs it ---------------------------------------------------------------


def test_default_run_json(runner: ScriptRunner) -> None:
    proc = runner.run("atomic_write", "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    trials = {trial["method"]: trial for trial in payload["trials"]}
    assert payload["lines"] == atomic_write.DEMO_LINES
    assert trials["atomic"]["reads_partial"] == 0
    assert trials["atomic"]["bytes"] == trials["in place"]["bytes"]


def test_ctrl_c_leaves_the_old_file_and_no_temporary_file(
    runner: ScriptRunner, tmp_path: Path
) -> None:
    path = tmp_path / "big.log"
    path.write_bytes(b"old\n")
    args = ["--output", str(path), "--lines", "10000000"]
    line = runner.ctrl_c("atomic_write", *args, ready="writing")
    pattern = r"interrupted after [\d,]+ of 10,000,000 lines; no half-written file left"
    assert re.fullmatch(pattern, line), line
    assert path.read_bytes() == b"old\n"
    assert names(tmp_path) == ["big.log"]
