"""blurcam: remove faces from video before anything is stored or sent.

The package is importable without the CLI: ``blurcam.pipeline.redact_file`` is the
file job, ``blurcam.detect.make_detector`` builds a detector, ``blurcam.redact``
destroys regions in place.
"""

__version__ = "0.1.0"
