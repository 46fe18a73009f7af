"""``blurcam review``: a local web page to redact, check, correct and export footage.

server.py serves the page (static/) and its API on 127.0.0.1 behind a per-run token;
jobs.py holds the desk's files and runs each render + verify in a child process.
Starlette and uvicorn are imported only here.
"""
