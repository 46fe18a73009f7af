"""The newsroom's tools around the frame pipeline: what a journalist runs on many files.

    batch/         folder runs: inputs -> a mirrored output tree, resumable (manifest)
    batch_cli.py   ``blurcam blur ... -o OUT/``: plans, runs and shows a folder run
    batch_view.py  the folder run's progress and summary
    cluster.py     the same folder run on a Ray cluster, one task per file
    verify/        ``blurcam verify``: is facial detail left in an output, frame by frame
    review/        ``blurcam review``: the local review desk (a page on 127.0.0.1)

The frame pipeline itself (source -> detect -> track -> redact -> sink) lives beside this
package in ``blurcam/``; none of its modules imports from here (only the CLI does).
"""
