#!/usr/bin/python3
"""Times start-up commands in turns (A B C A B C ...) rather than one after another, so drift
on a busy machine (seen here: +-0.6 ms between hyperfine's back-to-back benchmarks) falls on
every command alike. Prints each median and sandbox/bwrap.

Usage: interleaved.py WORK REF LAYER ROUNDS [limits]   (as bench/startup.sh sets them up)
With `limits` (a delegated cgroup is configured), also `--memory 512m --pids 256`.
"""
import os
import statistics
import subprocess
import sys
import time

work, ref, layer, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sandbox = [f"{work}/sandbox", "--root", f"{work}/store", "run", "--network", "none"]
bwrap = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--ro-bind", layer, "/",
         "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
commands = {
    "sandbox": sandbox + ["--image", ref, "--", "true"],
    "sandbox seccomp=unconfined": sandbox + ["--security-opt", "seccomp=unconfined", "--image", ref, "--", "true"],
    "bwrap --seccomp": bwrap + ["--seccomp", "9", "/bin/true"],
    "bwrap": bwrap + ["/bin/true"],
}
limits = len(sys.argv) > 5 and sys.argv[5] == "limits"
if limits:
    commands["sandbox --memory 512m --pids 256"] = sandbox + ["--memory", "512m", "--pids", "256", "--image", ref, "--", "true"]
times = {name: [] for name in commands}
for _ in range(rounds):
    for name, command in commands.items():
        # bwrap reads the filter from fd 9 to its end: a fresh open each time.
        fd = os.open(f"{work}/filter.bpf", os.O_RDONLY)
        os.dup2(fd, 9, inheritable=True)
        os.close(fd)
        start = time.perf_counter()
        done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, pass_fds=(9,), cwd=f"{work}/project")
        times[name].append(time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(f"error: `{name}` failed with {done.returncode}")
median = {name: statistics.median(t) * 1000 for name, t in times.items()}
for name, ms in median.items():
    print(f"  {name:38} {ms:8.2f} ms")
print(f"  sandbox/(bwrap --seccomp) = {median['sandbox'] / median['bwrap --seccomp']:.2f} (target <= 1.5); "
      f"the filter costs sandbox {median['sandbox'] - median['sandbox seccomp=unconfined']:.2f} ms, "
      f"bwrap {median['bwrap --seccomp'] - median['bwrap']:.2f} ms")
if limits:
    print(f"  the cgroup for --memory and --pids adds {median['sandbox --memory 512m --pids 256'] - median['sandbox']:.2f} ms (target <= 1)")
