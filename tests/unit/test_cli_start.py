"""What a command builds at start-up: the parser of its own command group only, and times printed for people
in the local zone exactly as datetime would print them."""
import contextlib
import io
import time
from datetime import datetime, timedelta, timezone

import pytest

from doppel.cli import GROUP_OF, build_parser, command_named
from doppel.cli.output import TIME_FORMAT, when


def parsed(parser, argv):
    """What the parser makes of argv: the namespace, or the exit code with what it printed."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            return vars(parser.parse_args(argv))
        except SystemExit as exc:
            return exc.code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("command", sorted(GROUP_OF))
def test_a_command_parses_as_the_whole_command_line_would(command):
    for argv in ([command], [command, "--help"], [command, "list"], [command, "nonsense", "-x"],
                 ["-v", "--log-format", "json", "-c", "x.yaml", command, "--help"]):
        assert command_named(argv) == command
        assert parsed(build_parser(command), argv) == parsed(build_parser(), argv), argv


@pytest.mark.parametrize("argv", [[], ["--help"], ["--version"], ["nonsense"], ["--conf", "x", "env", "list"],
                                  ["-c"], ["-vc", "x", "env"], ["--log-format=json", "--debug", "-cx.yaml", "db"]])
def test_anything_but_a_plain_command_builds_every_group(argv):
    expected = "db" if argv[-1:] == ["db"] else None
    assert command_named(argv) == expected


def test_a_command_builds_only_its_group():
    parser = build_parser("env")
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    assert list(sub.choices) == ["env"]
    (every,) = [a for a in build_parser()._actions if a.dest == "command"]
    assert set(every.choices) == set(GROUP_OF)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"])
def test_times_for_people_are_what_datetime_prints_in_the_local_zone(zone, monkeypatch):
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        start = datetime(2026, 1, 1, tzinfo=timezone.utc)
        moments = [start + timedelta(minutes=37 * n) for n in range(0, 600_000, 997)]  # across DST changes
        assert [when(m) for m in moments] == [m.astimezone().strftime(TIME_FORMAT) for m in moments]
        assert when(datetime(2026, 7, 1, 12)) == datetime(2026, 7, 1, 12, tzinfo=timezone.utc).astimezone(
        ).strftime(TIME_FORMAT)  # a naive moment is UTC
    finally:
        monkeypatch.undo()
        time.tzset()
