"""``blurcam verify INPUT OUTPUT``: independent evidence that a redacted output is safe to publish.

By job: measure.py judges one frame pair (INPUT's faces, the detail OUTPUT keeps of
each), sheet.py draws the contact sheet from OUTPUT's pixels, run.py reads a pair and
samples its frames, folder.py checks every output of a folder run (paired as the run
mapped them) into a FolderVerdict, command.py is the command (paths checked before any
work, progress and summary lines, the sheet and JSON written). Calibrated against exact
ground truth by bench/verify_calibration.py.
"""
from .folder import FileVerdict, FolderEvents, FolderVerdict, verify_folder
from .measure import Finding, VerifyConfig
from .run import VerifyResult, default_every, verify_pair

__all__ = ["FileVerdict", "Finding", "FolderEvents", "FolderVerdict", "VerifyConfig", "VerifyResult",
           "default_every", "verify_folder", "verify_pair"]
