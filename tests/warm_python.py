"""A warm `python` for dry runs of command/gpu_checks.sh on a CPU: the seconds of importing torch, paid once.

    python tests/warm_python.py serve SOCKET          # imports torch and the project, then waits on SOCKET
    python tests/warm_python.py run SOCKET ARGS...    # `python ARGS...`, run in a fork of the server

Each command the script runs becomes a fork of the server with the client's arguments, environment,
working folder and standard files, and runs as tests/graph_stand_in.py runs it (so --cuda-graphs records
through the CPU stand-in); the client exits with its status. A client that is stopped (the script's
`timeout`) takes its command down with it: the command's process group is killed. Only the imports are
shared: the server runs no torch operation before it forks, so no thread pool is copied half-made.
"""
import atexit
import io
import json
import os
import select
import signal
import socket
import sys
import traceback
from pathlib import Path

STANDARD_FILES = (0, 1, 2)


def serve(path: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import student_v0  # noqa: F401  (the imports each command would make: paid here, once)
    import teacher  # noqa: F401
    import tensorboardX  # noqa: F401
    import tests.graph_stand_in  # noqa: F401
    import utils.tools.bench_imagenet  # noqa: F401
    import utils.tools.sync_check  # noqa: F401
    import utils.synthetic  # noqa: F401

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    server.settimeout(1)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the forks' exits need no reaping here
    parent = os.getppid()
    print("ready", flush=True)
    while os.getppid() == parent:  # a test that dies without stopping the server takes it down within a second
        try:
            connection, _ = server.accept()
        except TimeoutError:
            continue
        connection.settimeout(None)
        sys.stdout.flush()
        if os.fork() == 0:
            server.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os._exit(attend(connection))
        connection.close()


def attend(connection) -> int:
    """Run one client's command in a fork and send back its exit status; stop it if the client goes away."""
    request, files = receive(connection)
    command = os.fork()
    if command == 0:
        connection.close()
        run(request, files)
    while True:
        finished, status = os.waitpid(command, os.WNOHANG)
        if finished:
            connection.sendall(str(os.waitstatus_to_exitcode(status)).encode())
            return 0
        readable, _, _ = select.select([connection], [], [], 0.05)
        if readable and not connection.recv(1):  # the client was stopped
            os.killpg(command, signal.SIGKILL)
            return 0


def receive(connection) -> tuple:
    data, files, _, _ = socket.recv_fds(connection, 1 << 16, len(STANDARD_FILES))
    size = int.from_bytes(data[:8], "big")
    data = data[8:]
    while len(data) < size:
        data += connection.recv(size - len(data))
    return json.loads(data), files


def run(request: dict, files: list) -> None:
    """Become the command: its standard files, folder, environment and arguments; exit with its status."""
    os.setpgrp()
    for target, source in zip(STANDARD_FILES, files):
        os.dup2(source, target)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)  # unbuffered, as
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True)  # PYTHONUNBUFFERED asks
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    import torch

    from tests import graph_stand_in

    if os.environ.get("OMP_NUM_THREADS", "").isdigit():  # read by a fresh python when torch loads: here, by hand
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

    status = 0
    try:
        graph_stand_in.main(request["argv"])
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    except BaseException:  # noqa: B036  (what an uncaught exception does to python: a traceback, status 1)
        traceback.print_exc()
        status = 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def client(path: str, argv: list) -> None:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(path)
    request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    socket.send_fds(connection, [len(request).to_bytes(8, "big") + request], list(STANDARD_FILES))
    status = connection.recv(16)
    sys.exit(int(status) if status else 1)


if __name__ == "__main__":
    {"serve": lambda: serve(sys.argv[2]), "run": lambda: client(sys.argv[2], sys.argv[3:])}[sys.argv[1]]()
