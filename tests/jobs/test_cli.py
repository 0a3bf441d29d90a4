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


def _loaded_by(argv, cwd):
    """The heavy packages (torch, ray) a fresh process has loaded after `lie-sweep ARGV` ran to its end."""
    import subprocess
    import sys

    code = ("import sys\nfrom jobs.cli import main\ntry:\n    status = main(sys.argv[1:])\n"
            "except SystemExit as exc:\n    status = exc.code\n"
            "print(sorted(m for m in ('torch', 'ray') if m in sys.modules), status)")
    out = subprocess.run([sys.executable, "-c", code, *argv], cwd=cwd, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_help_and_the_reading_commands_load_neither_torch_nor_ray(demo, tmp_path):
    """issue 24, item 5: they start in well under a second of imports (figures: jobs/README.md, Errors); what a
    command does not compute with, it does not import. `report` with thumbnails renders the dataset's images
    (torch); with --no-images it does not."""
    import pytest

    store, _ = demo
    for argv in (["--help"], ["run", "--help"], ["plan", "--help"], ["status", str(store)], ["show", str(store)],
                 ["check", str(store)], ["report", str(store), "--no-images", "-o", str(tmp_path / "r.html")]):
        try:
            got = _loaded_by(argv, tmp_path)
        except Exception as exc:  # pragma: no cover - shown with the command that failed
            pytest.fail(f"{argv}: {exc}")
        assert got.startswith("[]"), (argv, got)
