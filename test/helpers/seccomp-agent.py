#!/usr/bin/env python3
# A seccomp agent for the tests (runtime-spec config-linux.md "Seccomp", listenerPath): listens at SOCKET, takes
# each container process state a runtime sends with its seccomp listener fd, and answers every notification on
# that fd with -ERRNO. Writes one JSON line per state received and per notification answered to LOG, and "ready"
# on stdout once it listens.
#
# Usage: seccomp-agent.py SOCKET LOG ERRNO
import fcntl
import json
import os
import select
import socket
import struct
import sys
import threading

# linux/seccomp.h on x86_64: struct seccomp_notif (80 bytes), struct seccomp_notif_resp (24 bytes).
SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101
NOTIF = struct.Struct('<QII iI Q 6Q')
RESP = struct.Struct('<QqiI')

path, log_path, errno_answer = sys.argv[1], sys.argv[2], int(sys.argv[3])
lock = threading.Lock()


def log(entry):
    with lock, open(log_path, 'a') as log_file:
        log_file.write(json.dumps(entry) + '\n')


def answer(listener):
    while True:
        select.select([listener], [], [])
        buf = bytearray(NOTIF.size)
        try:
            fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, buf)
        except OSError:
            return  # no process uses the filter any more
        notif_id, pid, _flags, nr, _arch, _ip, *_args = NOTIF.unpack(buf)
        log({'notified': nr, 'pid': pid})
        try:
            fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, bytearray(RESP.pack(notif_id, 0, -errno_answer, 0)))
        except OSError:
            pass  # the process is gone


def serve(conn):
    data, fds = b'', []
    while True:
        chunk, received, _flags, _addr = socket.recv_fds(conn, 65536, 4)
        fds += received
        if not chunk:
            break
        data += chunk
    conn.close()
    log({'state': json.loads(data), 'fds': len(fds)})
    for fd in fds:
        threading.Thread(target=answer, args=(fd,), daemon=True).start()


server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
# Bound by name in its directory: the path may be longer than a sockaddr_un holds.
os.chdir(os.path.dirname(path))
server.bind(os.path.basename(path))
server.listen(16)
print('ready', flush=True)
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
