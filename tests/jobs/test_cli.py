"""The command line's own checks, without Ray: they fail before anything starts."""

from jobs.cli import main


def test_the_two_address_flags_say_which_is_which(capsys):
    assert main(["run", "--address", "http://head:8265"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "GCS address" in err and "lie-sweep submit --address http://head:8265" in err
    for argv in (["job", "status", "raysubmit_x", "--address", "head:6379"], ["submit", "--address", "head:6379"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "dashboard's URL" in err and "lie-sweep run --address" in err
