/* Probes what a hostile process inside the sandbox tries; prints `name=result` lines. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

static void report(const char *name, long r) {
    printf("%s=%s\n", name, r >= 0 ? "allowed" : strerror(errno));
}

static void denied_calls(void) {
    report("keyctl", syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0));
    report("add_key", syscall(SYS_add_key, "user", "probe", "x", 1, -3));
    report("bpf", syscall(SYS_bpf, 0, NULL, 0));
    report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    report("userfaultfd", syscall(SYS_userfaultfd, 0));
    report("io_uring_setup", syscall(SYS_io_uring_setup, 1, NULL));
    report("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, 0));
    report("name_to_handle_at", syscall(SYS_name_to_handle_at, -1, ".", NULL, NULL, 0));
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
    report("init_module", syscall(SYS_init_module, NULL, 0, ""));
    report("acct", syscall(SYS_acct, NULL));
    report("swapoff", syscall(SYS_swapoff, "/x"));
    report("reboot", syscall(SYS_reboot, 0, 0, 0, NULL));
    report("personality_bad", syscall(SYS_personality, 0x0040000 /* ADDR_NO_RANDOMIZE */));
    report("personality_query", syscall(SYS_personality, 0xffffffff));
    char c = 'x';
    report("tiocsti", syscall(SYS_ioctl, 0, TIOCSTI, &c));
    report("tiocsti_high_bits", syscall(SYS_ioctl, 0, TIOCSTI | (1UL << 32), &c));
    report("tioclinux", syscall(SYS_ioctl, 0, TIOCLINUX, &c));
#ifdef __x86_64__
    /* getpid through the x32 ABI (bit 30 set). */
    report("x32_getpid", syscall(39 | 0x40000000));
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        /* getpid through the i386 ABI. */
        long r;
        __asm__ volatile("int $0x80" : "=a"(r) : "a"(20) : "memory");
        _exit(r > 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    if (WIFSIGNALED(status))
        printf("i386_getpid=killed by signal %d\n", WTERMSIG(status));
    else
        printf("i386_getpid=exited %d\n", WEXITSTATUS(status));
#endif
}

static void daily_tools(void) {
    /* A debugger: trace a child, let it go on. */
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        ptrace(PTRACE_TRACEME, 0, NULL, NULL);
        raise(SIGSTOP);
        _exit(7);
    }
    int status = 0;
    waitpid(child, &status, 0);
    long r = WIFSTOPPED(status) ? ptrace(PTRACE_CONT, child, NULL, NULL) : -1;
    waitpid(child, &status, 0);
    printf("ptrace=%s\n", r == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 7 ? "works" : strerror(errno));
    /* A nested sandbox (bwrap, a test runner): a user namespace of its own. */
    fflush(stdout);
    child = fork();
    if (child == 0) _exit(unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0 ? 0 : 1);
    waitpid(child, &status, 0);
    printf("nested_userns=%s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "works" : "refused");
}

static void keyring(const char *description) {
    long id = syscall(SYS_keyctl, 10 /* KEYCTL_SEARCH */, -3 /* session */, "user", description, 0);
    printf("host_key=%s\n", id >= 0 ? "found" : strerror(errno));
}

static void abstract_socket(const char *name) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    size_t len = strlen(name);
    memcpy(addr.sun_path + 1, name, len);
    int r = connect(fd, (struct sockaddr *)&addr, offsetof(struct sockaddr_un, sun_path) + 1 + len);
    printf("abstract=%s\n", r == 0 ? "connected" : strerror(errno));
}

static void root_powers(void) {
    int cg = open("/sys/fs/cgroup/cgroup.procs", O_WRONLY);
    report("cgroup_write", cg < 0 ? -1 : write(cg, "1", 1));
    report("umount_proc_sys", umount2("/proc/sys", MNT_DETACH));
    report("remount_proc_sys_rw", mount(NULL, "/proc/sys", NULL, MS_REMOUNT | MS_BIND, NULL));
    int fd = open("/proc/sys/net/ipv4/conf/all/route_localnet", O_WRONLY);
    report("route_localnet", fd < 0 ? -1 : write(fd, "1", 1));
    report("sethostname", sethostname("evil", 4));
    /* Masked paths stay masked: kcore reads nothing, and the mask cannot be taken off. */
    report("umount_kcore", umount2("/proc/kcore", MNT_DETACH));
    char byte;
    int kcore = open("/proc/kcore", O_RDONLY);
    printf("kcore_read=%s\n", kcore < 0 ? strerror(errno) : read(kcore, &byte, 1) > 0 ? "data" : "empty");
}

/* Scans every process's environ and cmdline as fast as it can until `stop` exists (or 20 s),
 * printing any that holds `needle`. */
static int holds(const char *path, const char *needle) {
    char buf[65536];
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    for (ssize_t i = 0; i < n; i++) if (buf[i] == 0) buf[i] = '\n';
    buf[n] = 0;
    return strstr(buf, needle) != NULL;
}

static void watch(const char *env_needle, const char *argv_needle) {
    time_t end = time(NULL) + 20;
    long scans = 0;
    while (time(NULL) < end && access("stop", F_OK) != 0) {
        DIR *proc = opendir("/proc");
        struct dirent *e;
        while (proc && (e = readdir(proc))) {
            if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
            char path[64];
            snprintf(path, sizeof path, "/proc/%s/environ", e->d_name);
            if (holds(path, env_needle)) printf("environ of %s\n", e->d_name);
            snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
            if (holds(path, argv_needle)) printf("cmdline of %s\n", e->d_name);
            /* CVE-2019-5736: a process of sandbox's own (pid 1, a joining one) must not give
             * out its binary, which an open fd could later overwrite. */
            char target[4096];
            snprintf(path, sizeof path, "/proc/%s/exe", e->d_name);
            ssize_t n = readlink(path, target, sizeof target - 1);
            if (n > 0) {
                target[n] = 0;
                if (strstr(target, "sandbox-it-bin")) {
                    int fd = open(path, O_RDONLY);
                    if (fd >= 0) { printf("exe of %s: %s\n", e->d_name, target); close(fd); }
                }
            }
        }
        if (proc) closedir(proc);
        scans++;
    }
    fprintf(stderr, "scans=%ld\n", scans);
}

/* Allocates and touches `mb` MiB, a page at a time. */
static void alloc(long mb) {
    for (long i = 0; i < mb; i++) {
        char *chunk = malloc(1 << 20);
        if (!chunk) { printf("alloc=failed at %ld MiB\n", i); return; }
        memset(chunk, 1, 1 << 20);
    }
    printf("alloc=%ld MiB\n", mb);
}

/* Asks the ssh agent at $SSH_AUTH_SOCK for its identities (SSH_AGENTC_REQUEST_IDENTITIES),
   as `ssh-add -l` does, and prints how many it holds. */
static void agent(void) {
    const char *path = getenv("SSH_AUTH_SOCK");
    if (!path) { printf("agent=no SSH_AUTH_SOCK\n"); return; }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { printf("agent=%s\n", strerror(errno)); return; }
    unsigned char request[5] = { 0, 0, 0, 1, 11 };
    if (write(fd, request, 5) != 5) { printf("agent=write failed\n"); return; }
    unsigned char answer[9];
    size_t got = 0;
    while (got < sizeof answer) {
        ssize_t n = read(fd, answer + got, sizeof answer - got);
        if (n <= 0) break;
        got += n;
    }
    if (got < 9 || answer[4] != 12) { printf("agent=unexpected answer\n"); return; }
    unsigned count = (answer[5] << 24) | (answer[6] << 16) | (answer[7] << 8) | answer[8];
    printf("agent=%u identities\n", count);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "denied") == 0) denied_calls();
    else if (argc > 1 && strcmp(argv[1], "tools") == 0) daily_tools();
    else if (argc > 2 && strcmp(argv[1], "keyring") == 0) keyring(argv[2]);
    else if (argc > 1 && strcmp(argv[1], "root") == 0) root_powers();
    else if (argc > 2 && strcmp(argv[1], "abstract") == 0) abstract_socket(argv[2]);
    else if (argc > 2 && strcmp(argv[1], "alloc") == 0) alloc(atol(argv[2]));
    else if (argc > 1 && strcmp(argv[1], "agent") == 0) agent();
    else if (argc > 4 && strcmp(argv[1], "watch") == 0) {
        /* The needles are joined here, so no command line (ours included) holds them. */
        char env_needle[256], argv_needle[256];
        snprintf(env_needle, sizeof env_needle, "%s%s", argv[2], argv[4]);
        snprintf(argv_needle, sizeof argv_needle, "%s%s", argv[3], argv[4]);
        watch(env_needle, argv_needle);
    }
    else { fprintf(stderr, "usage: confine denied|tools|keyring DESC|root\n"); return 2; }
    return 0;
}
