# A console socket for tests, like runc's recvtty: receives the pty master runbox sends with SCM_RIGHTS, types
# the given input into it, and prints everything the container writes to its terminal.
import os
import socket
import sys

path = sys.argv[1]
typed = sys.argv[2] if len(sys.argv) > 2 else ''
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
server.listen(1)
print('listening', flush=True)
conn, _ = server.accept()
_, fds, _, _ = socket.recv_fds(conn, 4096, 1)
master = fds[0]
print(f'isatty={os.isatty(master)}', flush=True)
if typed:
    os.write(master, typed.encode())
output = b''
while True:
    try:
        data = os.read(master, 4096)
    except OSError:
        break  # EIO: the last holder of the slave side is gone
    if not data:
        break
    output += data
sys.stdout.write(output.decode(errors='replace'))
