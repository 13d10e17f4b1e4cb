#!/usr/bin/python3
"""Writes a seccomp BPF program for `bwrap --seccomp FD` shaped like sandbox's default filter:
an allowlist (default EPERM) of every system call of this architecture but the ones sandbox
always denies, with ioctl allowed except TIOCSTI and personality for the same values.
Debian's python3-seccomp (libseccomp) compiles it. Usage: seccomp-filter.py OUT
"""
import sys

import seccomp

DENIED = {
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "open_by_handle_at", "name_to_handle_at",
    "acct", "swapon", "swapoff", "reboot", "settimeofday", "clock_settime", "clock_adjtime",
    "ioctl", "personality",
}
TIOCSTI = 0x5412

f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(1))
for nr in range(0, 460):
    try:
        name = seccomp.resolve_syscall(seccomp.Arch.NATIVE, nr)
    except Exception:
        continue
    name = name.decode() if isinstance(name, bytes) else name
    if name and name not in DENIED:
        f.add_rule(seccomp.ALLOW, name)
# libseccomp takes one comparison per argument and rule, and no rule of another action for
# the same call: ioctl is allowed unless it is TIOCSTI (TIOCLINUX is left out here; the cost
# of one more comparison is what matters).
f.add_rule(seccomp.ALLOW, "ioctl", seccomp.Arg(1, seccomp.NE, TIOCSTI))
for value in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF):
    f.add_rule(seccomp.ALLOW, "personality", seccomp.Arg(0, seccomp.EQ, value))
with open(sys.argv[1], "wb") as out:
    f.export_bpf(out)
