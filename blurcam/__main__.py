"""``python -m blurcam`` and the ``blurcam`` command.

Stop signals are handled before anything slow is imported (typer, PyAV, the
detectors take about a second), so a Ctrl-C in the first second also ends with a
one-line message and the interrupted exit status, never a traceback.
"""
import sys

from blurcam import signals


def main() -> None:
    signals.install()
    try:
        from blurcam.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt as exc:  # before a command's own handling (blurcam.cli.cli_errors, which says more)
        code = signals.exit_code(exc)
        sys.stderr.write(signals.stopped_line(code) + "\n")
        signals.leave(code)
    except SystemExit as exc:
        if signals.received is not None and exc.code in (129, 130, 143):
            signals.leave(exc.code)  # stopped: the command has cleaned up; skip native teardown
        raise
    finally:
        signals.settle()  # a Ctrl-C as the run ends: exit 130, not death by SIGINT at shutdown


if __name__ == "__main__":
    main()
