#!/usr/bin/env python3
"""What containerd's runc shim does with a runtime binary, and nothing more: it is a child subreaper
(prctl PR_SET_CHILD_SUBREAPER), runs the runtime's commands, reads the pid files they write and learns each
process's exit status by reaping that pid with waitpid once the runtime command has exited.

argv[1] is a JSON list of steps, run in order:
  {"run": [argv...], "stdout": FILE}  runs a command (stdin /dev/null, stdout to FILE or /dev/null, stderr
                                      to a file: a created container keeps the stdio it was given, so a pipe
                                      would not end before it does); a non-zero exit ends the harness with
                                      that stderr
  {"reap": PIDFILE}                   waitpid on the pid in PIDFILE; its exit status (128+N for signal N) is
                                      appended to the result
Prints the result, a JSON list of exit statuses. Gives up after 60 s (SIGALRM), so a test never hangs on it.
"""
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile

PR_SET_CHILD_SUBREAPER = 36

signal.alarm(60)
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
    errno = ctypes.get_errno()
    sys.exit(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(errno)}")

statuses = []
for step in json.loads(sys.argv[1]):
    if "run" in step:
        with open(step.get("stdout", os.devnull), "wb") as out, tempfile.TemporaryFile() as err:
            done = subprocess.run(step["run"], stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            if done.returncode != 0:
                err.seek(0)
                sys.exit(f"{' '.join(step['run'])}: exit {done.returncode}: {err.read().decode().strip()}")
    else:
        with open(step["reap"]) as pid_file:
            pid = int(pid_file.read())
        _, status = os.waitpid(pid, 0)
        statuses.append(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))

# Whatever else was reparented here and has exited (short-lived helpers of the runtime) is reaped too.
try:
    while os.waitpid(-1, os.WNOHANG)[0] > 0:
        pass
except ChildProcessError:
    pass
print(json.dumps(statuses))
