"""Stops the proxy worker threads of one process (and only them) until this program is killed (60 s at most).

PTRACE_SEIZE + PTRACE_INTERRUPT stops a single thread without a group stop, so the agent's admin thread keeps
answering /metrics while no worker accepts: connections wait in the listeners' accept queues. When this program
exits the kernel detaches the threads and they run on.

usage: freeze_workers.py PID      prints "frozen N" once the workers are stopped
"""
import ctypes
import os
import sys
import time

PTRACE_SEIZE, PTRACE_INTERRUPT = 0x4206, 0x4207
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]


def workers(pid):
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            if f.read().startswith("weir-worker-"):
                out.append(int(tid))
    return out


pid = int(sys.argv[1])
tids = workers(pid)
if not tids:
    sys.exit(f"no weir-worker threads in {pid}")
for tid in tids:
    for request in (PTRACE_SEIZE, PTRACE_INTERRUPT):
        if libc.ptrace(request, tid, None, None) != 0:
            sys.exit(f"ptrace {request:#x} {tid}: errno {ctypes.get_errno()}")
    os.waitpid(tid, os.__dict__.get("__WALL", 0x40000000))
print(f"frozen {len(tids)}", flush=True)
time.sleep(60)
