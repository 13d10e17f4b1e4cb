//! The default seccomp filter of every process inside: an allowlist that starts from
//! Docker's/podman's default profile, as data.
//!
//! Differences from that profile, and why:
//! - Allowed without capabilities: the mount API, unshare, setns, clone with namespace flags,
//!   chroot and pivot_root, because a developer runs tools that make nested user namespaces
//!   (bwrap, test runners). The kernel confines them: what they mount lives in a namespace the
//!   process made, and our own mounts are locked (see `nest`).
//! - Always allowed: ptrace, process_vm_readv/writev, kcmp, pidfd_getfd (gdb and strace are
//!   daily tools; the kernel's ptrace access checks still apply).
//! - Always denied, whatever capabilities: the keyring (keyctl, add_key, request_key), bpf,
//!   perf_event_open, userfaultfd, io_uring, kexec, kernel modules, file handles
//!   (open_by_handle_at, name_to_handle_at), acct, swapon/off, reboot, and clock or time
//!   changes: they reach kernel state shared with the host.
//! - ioctl is allowed except TIOCSTI and TIOCLINUX, compared on the low 32 bits of the
//!   command (the kernel ignores the high bits, so `TIOCSTI | 1 << 32` is still TIOCSTI).
//! - personality only with the values Docker allows.
//!
//! Anything not listed fails with EPERM. The filter checks the architecture: a 32-bit (i386)
//! system call from a 64-bit process kills it, and x32 numbers (bit 30 set) fail.
//!
//! The BPF is generated here, not by seccompiler's compiler (whose types and installer are
//! used): it emits a few instructions per system call in one linear chain (1571 for this
//! list), which cost about a millisecond of start-up to load twice and a long walk on every
//! system call. Here the allowed numbers are merged into ranges (about 50), four instructions
//! each, and the argument checks are small blocks reached by a jump.

use seccompiler::{sock_filter, BpfProgram};

/// System calls allowed with any arguments, on every architecture we build for.
const ALLOWED: &[libc::c_long] = &[
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_adjtimex,
    libc::SYS_bind,
    libc::SYS_brk,
    libc::SYS_capget,
    libc::SYS_capset,
    libc::SYS_chdir,
    libc::SYS_chroot,
    libc::SYS_clock_getres,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_close,
    libc::SYS_close_range,
    libc::SYS_connect,
    libc::SYS_copy_file_range,
    libc::SYS_dup,
    libc::SYS_dup3,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_eventfd2,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_fadvise64,
    libc::SYS_fallocate,
    libc::SYS_fanotify_mark,
    libc::SYS_fchdir,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    libc::SYS_fchown,
    libc::SYS_fchownat,
    libc::SYS_fcntl,
    libc::SYS_fdatasync,
    libc::SYS_fgetxattr,
    libc::SYS_flistxattr,
    libc::SYS_flock,
    libc::SYS_fremovexattr,
    libc::SYS_fsconfig,
    libc::SYS_fsetxattr,
    libc::SYS_fsmount,
    libc::SYS_fsopen,
    libc::SYS_fspick,
    libc::SYS_fstatfs,
    libc::SYS_fsync,
    libc::SYS_ftruncate,
    libc::SYS_futex,
    libc::SYS_futex_waitv,
    libc::SYS_get_mempolicy,
    libc::SYS_get_robust_list,
    libc::SYS_getcpu,
    libc::SYS_getcwd,
    libc::SYS_getdents64,
    libc::SYS_getegid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getgroups,
    libc::SYS_getitimer,
    libc::SYS_getpeername,
    libc::SYS_getpgid,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_getpriority,
    libc::SYS_getrandom,
    libc::SYS_getresgid,
    libc::SYS_getresuid,
    libc::SYS_getrlimit,
    libc::SYS_getrusage,
    libc::SYS_getsid,
    libc::SYS_getsockname,
    libc::SYS_getsockopt,
    libc::SYS_gettid,
    libc::SYS_gettimeofday,
    libc::SYS_getuid,
    libc::SYS_getxattr,
    libc::SYS_inotify_add_watch,
    libc::SYS_inotify_init1,
    libc::SYS_inotify_rm_watch,
    libc::SYS_io_cancel,
    libc::SYS_io_destroy,
    libc::SYS_io_getevents,
    libc::SYS_io_setup,
    libc::SYS_io_submit,
    libc::SYS_ioprio_get,
    libc::SYS_ioprio_set,
    libc::SYS_kcmp,
    libc::SYS_kill,
    libc::SYS_landlock_add_rule,
    libc::SYS_landlock_create_ruleset,
    libc::SYS_landlock_restrict_self,
    libc::SYS_lgetxattr,
    libc::SYS_linkat,
    libc::SYS_listen,
    libc::SYS_listxattr,
    libc::SYS_llistxattr,
    libc::SYS_lremovexattr,
    libc::SYS_lseek,
    libc::SYS_lsetxattr,
    libc::SYS_madvise,
    libc::SYS_mbind,
    libc::SYS_membarrier,
    libc::SYS_memfd_create,
    libc::SYS_mincore,
    libc::SYS_mkdirat,
    libc::SYS_mknodat,
    libc::SYS_mlock,
    libc::SYS_mlock2,
    libc::SYS_mlockall,
    libc::SYS_mmap,
    libc::SYS_mount,
    libc::SYS_mount_setattr,
    libc::SYS_move_mount,
    libc::SYS_mprotect,
    libc::SYS_mq_getsetattr,
    libc::SYS_mq_notify,
    libc::SYS_mq_open,
    libc::SYS_mq_timedreceive,
    libc::SYS_mq_timedsend,
    libc::SYS_mq_unlink,
    libc::SYS_mremap,
    libc::SYS_msgctl,
    libc::SYS_msgget,
    libc::SYS_msgrcv,
    libc::SYS_msgsnd,
    libc::SYS_msync,
    libc::SYS_munlock,
    libc::SYS_munlockall,
    libc::SYS_munmap,
    libc::SYS_nanosleep,
    libc::SYS_newfstatat,
    libc::SYS_open_tree,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_pidfd_getfd,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_send_signal,
    libc::SYS_pipe2,
    libc::SYS_pivot_root,
    libc::SYS_pkey_alloc,
    libc::SYS_pkey_free,
    libc::SYS_pkey_mprotect,
    libc::SYS_ppoll,
    libc::SYS_prctl,
    libc::SYS_pread64,
    libc::SYS_preadv,
    libc::SYS_preadv2,
    libc::SYS_prlimit64,
    libc::SYS_process_madvise,
    libc::SYS_process_mrelease,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_pselect6,
    libc::SYS_ptrace,
    libc::SYS_pwrite64,
    libc::SYS_pwritev,
    libc::SYS_pwritev2,
    libc::SYS_read,
    libc::SYS_readahead,
    libc::SYS_readlinkat,
    libc::SYS_readv,
    libc::SYS_recvfrom,
    libc::SYS_recvmmsg,
    libc::SYS_recvmsg,
    libc::SYS_remap_file_pages,
    libc::SYS_removexattr,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_restart_syscall,
    libc::SYS_rseq,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigpending,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigqueueinfo,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigsuspend,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_rt_tgsigqueueinfo,
    libc::SYS_sched_get_priority_max,
    libc::SYS_sched_get_priority_min,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_getattr,
    libc::SYS_sched_getparam,
    libc::SYS_sched_getscheduler,
    libc::SYS_sched_rr_get_interval,
    libc::SYS_sched_setaffinity,
    libc::SYS_sched_setattr,
    libc::SYS_sched_setparam,
    libc::SYS_sched_setscheduler,
    libc::SYS_sched_yield,
    libc::SYS_seccomp,
    libc::SYS_semctl,
    libc::SYS_semget,
    libc::SYS_semop,
    libc::SYS_semtimedop,
    libc::SYS_sendfile,
    libc::SYS_sendmmsg,
    libc::SYS_sendmsg,
    libc::SYS_sendto,
    libc::SYS_set_mempolicy,
    libc::SYS_set_robust_list,
    libc::SYS_set_tid_address,
    libc::SYS_setdomainname,
    libc::SYS_setfsgid,
    libc::SYS_setfsuid,
    libc::SYS_setgid,
    libc::SYS_setgroups,
    libc::SYS_sethostname,
    libc::SYS_setitimer,
    libc::SYS_setns,
    libc::SYS_setpgid,
    libc::SYS_setpriority,
    libc::SYS_setregid,
    libc::SYS_setresgid,
    libc::SYS_setresuid,
    libc::SYS_setreuid,
    libc::SYS_setrlimit,
    libc::SYS_setsid,
    libc::SYS_setsockopt,
    libc::SYS_setuid,
    libc::SYS_setxattr,
    libc::SYS_shmat,
    libc::SYS_shmctl,
    libc::SYS_shmdt,
    libc::SYS_shmget,
    libc::SYS_shutdown,
    libc::SYS_sigaltstack,
    libc::SYS_signalfd4,
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_splice,
    libc::SYS_statfs,
    libc::SYS_statx,
    libc::SYS_symlinkat,
    libc::SYS_sync,
    libc::SYS_sync_file_range,
    libc::SYS_syncfs,
    libc::SYS_sysinfo,
    libc::SYS_tee,
    libc::SYS_tgkill,
    libc::SYS_timer_create,
    libc::SYS_timer_delete,
    libc::SYS_timer_getoverrun,
    libc::SYS_timer_gettime,
    libc::SYS_timer_settime,
    libc::SYS_timerfd_create,
    libc::SYS_timerfd_gettime,
    libc::SYS_timerfd_settime,
    libc::SYS_times,
    libc::SYS_tkill,
    libc::SYS_truncate,
    libc::SYS_umask,
    libc::SYS_umount2,
    libc::SYS_uname,
    libc::SYS_unlinkat,
    libc::SYS_unshare,
    libc::SYS_utimensat,
    libc::SYS_vmsplice,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_write,
    libc::SYS_writev,
];

/// The x86_64 system calls that newer architectures replaced with *at or generic forms.
#[cfg(target_arch = "x86_64")]
const ALLOWED_LEGACY: &[libc::c_long] = &[
    libc::SYS_access,
    libc::SYS_alarm,
    libc::SYS_arch_prctl,
    libc::SYS_chmod,
    libc::SYS_chown,
    libc::SYS_creat,
    libc::SYS_dup2,
    libc::SYS_epoll_create,
    libc::SYS_epoll_wait,
    libc::SYS_eventfd,
    libc::SYS_fork,
    libc::SYS_fstat,
    libc::SYS_futimesat,
    libc::SYS_getdents,
    libc::SYS_getpgrp,
    libc::SYS_inotify_init,
    libc::SYS_lchown,
    libc::SYS_link,
    libc::SYS_lstat,
    libc::SYS_mkdir,
    libc::SYS_mknod,
    libc::SYS_modify_ldt,
    libc::SYS_open,
    libc::SYS_pause,
    libc::SYS_pipe,
    libc::SYS_poll,
    libc::SYS_readlink,
    libc::SYS_rename,
    libc::SYS_rmdir,
    libc::SYS_select,
    libc::SYS_signalfd,
    libc::SYS_stat,
    libc::SYS_symlink,
    libc::SYS_time,
    libc::SYS_unlink,
    libc::SYS_utime,
    libc::SYS_utimes,
    libc::SYS_vfork,
];

#[cfg(not(target_arch = "x86_64"))]
const ALLOWED_LEGACY: &[libc::c_long] = &[];

/// Denied whatever the profile grows into: each reaches kernel state shared with the host. A
/// unit test keeps them out of the allowlist.
const ALWAYS_DENIED: &[libc::c_long] = &[
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_acct,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
];

/// Terminal ioctls that inject input or reach the console (low 32 bits of the command).
const DENIED_IOCTLS: [u64; 2] = [libc::TIOCSTI, libc::TIOCLINUX];

/// personality(2) values Docker allows: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32,
/// and the query 0xffffffff.
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

#[derive(Debug, thiserror::Error)]
#[error("the seccomp filter could not be built: {0}")]
pub struct FilterError(String);

// Classic BPF as seccomp reads it (<linux/filter.h>, <linux/seccomp.h>): BPF_LD|BPF_W|BPF_ABS,
// BPF_JMP|BPF_JA, BPF_JMP|BPF_{JEQ,JGT,JGE}|BPF_K, BPF_RET|BPF_K.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGT_K: u16 = 0x25;
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
/// Offsets in `struct seccomp_data`: nr, arch, then the six 64-bit arguments (their low 32
/// bits first on a little-endian machine).
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const fn data_arg_low(n: u32) -> u32 {
    16 + 8 * n
}
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// What the filter does with a system call it lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Allow,
    /// Jump to the ioctl block.
    Ioctl,
    /// Jump to the personality block.
    Personality,
}

/// Allowed numbers merged into ranges `(first, last, action)`; the argument-checked calls stay
/// single.
fn ranges(allowed: &[libc::c_long]) -> Vec<(u32, u32, Action)> {
    let mut listed: Vec<(u32, Action)> = allowed
        .iter()
        .filter(|nr| !ALWAYS_DENIED.contains(nr))
        .filter_map(|nr| u32::try_from(*nr).ok().map(|nr| (nr, Action::Allow)))
        .collect();
    for (nr, action) in [
        (libc::SYS_ioctl, Action::Ioctl),
        (libc::SYS_personality, Action::Personality),
    ] {
        if let Ok(nr) = u32::try_from(nr) {
            listed.push((nr, action));
        }
    }
    listed.sort_unstable();
    listed.dedup_by_key(|(nr, _)| *nr);
    let mut out: Vec<(u32, u32, Action)> = Vec::new();
    for (nr, action) in listed {
        match out.last_mut() {
            Some((_, last, Action::Allow)) if action == Action::Allow && *last + 1 == nr => {
                *last = nr;
            }
            _ => out.push((nr, nr, action)),
        }
    }
    out
}

/// The default filter as a BPF program for this architecture.
pub fn default_filter() -> Result<BpfProgram, FilterError> {
    let deny = RET_ERRNO | libc::EPERM as u32;
    let ranges = ranges(&[ALLOWED, ALLOWED_LEGACY].concat());
    let mut program = vec![
        stmt(BPF_LD_W_ABS, DATA_ARCH),
        jump(BPF_JMP_JEQ_K, AUDIT_ARCH, 1, 0),
        stmt(BPF_RET_K, RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, DATA_NR),
    ];
    if cfg!(target_arch = "x86_64") {
        program.push(jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1));
        program.push(stmt(BPF_RET_K, deny));
    }
    // Each range, in ascending order: above it, try the next; in it, its action; below it (and
    // so above the one before), denied.
    let mut block_jumps = Vec::new();
    for (first, last, action) in &ranges {
        program.push(jump(BPF_JMP_JGT_K, *last, 3, 0));
        program.push(jump(BPF_JMP_JGE_K, *first, 0, 1));
        match action {
            Action::Allow => program.push(stmt(BPF_RET_K, RET_ALLOW)),
            other => {
                block_jumps.push((program.len(), *other));
                program.push(stmt(BPF_JMP_JA, 0));
            }
        }
        program.push(stmt(BPF_RET_K, deny));
    }
    program.push(stmt(BPF_RET_K, deny));
    // ioctl: every command but TIOCSTI and TIOCLINUX, on the low 32 bits the kernel reads.
    let ioctl_at = program.len();
    program.push(stmt(BPF_LD_W_ABS, data_arg_low(1)));
    for (i, command) in DENIED_IOCTLS.iter().enumerate() {
        let to_deny =
            u8::try_from(DENIED_IOCTLS.len() - i).map_err(|e| FilterError(e.to_string()))?;
        program.push(jump(BPF_JMP_JEQ_K, low_word(*command)?, to_deny, 0));
    }
    program.push(stmt(BPF_RET_K, RET_ALLOW));
    program.push(stmt(BPF_RET_K, deny));
    // personality: only the values Docker allows (the kernel takes an unsigned int).
    let personality_at = program.len();
    program.push(stmt(BPF_LD_W_ABS, data_arg_low(0)));
    for (i, value) in PERSONALITIES.iter().enumerate() {
        let to_allow =
            u8::try_from(PERSONALITIES.len() - i).map_err(|e| FilterError(e.to_string()))?;
        program.push(jump(BPF_JMP_JEQ_K, low_word(*value)?, to_allow, 0));
    }
    program.push(stmt(BPF_RET_K, deny));
    program.push(stmt(BPF_RET_K, RET_ALLOW));
    for (at, action) in block_jumps {
        let target = if action == Action::Ioctl {
            ioctl_at
        } else {
            personality_at
        };
        // A jump's offset counts from the instruction after it.
        program[at].k = u32::try_from(target - at - 1).map_err(|e| FilterError(e.to_string()))?;
    }
    if program.len() > 4096 {
        return Err(FilterError(format!(
            "{} instructions is over the kernel's limit",
            program.len()
        )));
    }
    Ok(program)
}

fn low_word(value: u64) -> Result<u32, FilterError> {
    u32::try_from(value).map_err(|_| FilterError(format!("{value:#x} does not fit 32 bits")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `program` on one system call as the kernel would (the instructions it uses).
    fn run(program: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, arg) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_le_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let insn = &program[pc];
            pc += 1;
            match insn.code {
                BPF_LD_W_ABS => {
                    let at = insn.k as usize;
                    acc = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
                }
                BPF_JMP_JA => pc += insn.k as usize,
                BPF_JMP_JEQ_K | BPF_JMP_JGT_K | BPF_JMP_JGE_K => {
                    let taken = match insn.code {
                        BPF_JMP_JEQ_K => acc == insn.k,
                        BPF_JMP_JGT_K => acc > insn.k,
                        _ => acc >= insn.k,
                    };
                    pc += usize::from(if taken { insn.jt } else { insn.jf });
                }
                BPF_RET_K => return insn.k,
                other => panic!("unexpected instruction {other:#x}"),
            }
        }
    }

    fn call(program: &[sock_filter], nr: libc::c_long, args: [u64; 6]) -> u32 {
        run(program, AUDIT_ARCH, nr as u32, args)
    }

    const EPERM: u32 = RET_ERRNO | libc::EPERM as u32;

    #[test]
    fn the_filter_allows_the_list_and_denies_the_rest() {
        let program = default_filter().unwrap();
        assert!(program.len() < 400, "{} instructions", program.len());
        for nr in ALLOWED.iter().chain(ALLOWED_LEGACY) {
            assert_eq!(call(&program, *nr, [0; 6]), RET_ALLOW, "system call {nr}");
        }
        for nr in ALWAYS_DENIED {
            assert!(
                !ALLOWED.contains(nr) && !ALLOWED_LEGACY.contains(nr),
                "{nr} is listed"
            );
            assert_eq!(call(&program, *nr, [0; 6]), EPERM, "system call {nr}");
        }
        // Everything not listed, up to well past the last number.
        for nr in 0..1024 {
            let listed = ALLOWED.contains(&nr)
                || ALLOWED_LEGACY.contains(&nr)
                || [libc::SYS_ioctl, libc::SYS_personality].contains(&nr);
            if !listed {
                assert_eq!(call(&program, nr, [0; 6]), EPERM, "system call {nr}");
            }
        }
    }

    #[test]
    fn ioctl_and_personality_are_checked_on_the_32_bits_the_kernel_reads() {
        let program = default_filter().unwrap();
        let ioctl = |cmd: u64| call(&program, libc::SYS_ioctl, [0, cmd, 0, 0, 0, 0]);
        assert_eq!(ioctl(libc::TIOCSTI), EPERM);
        assert_eq!(ioctl(libc::TIOCSTI | 1 << 32), EPERM);
        assert_eq!(ioctl(libc::TIOCLINUX), EPERM);
        assert_eq!(ioctl(libc::TIOCGWINSZ), RET_ALLOW);
        assert_eq!(ioctl(libc::FIONREAD), RET_ALLOW);
        let personality =
            |value: u64| call(&program, libc::SYS_personality, [value, 0, 0, 0, 0, 0]);
        assert_eq!(personality(0xffff_ffff), RET_ALLOW);
        assert_eq!(personality(0x8), RET_ALLOW);
        assert_eq!(personality(0x0040000), EPERM);
    }

    #[test]
    fn another_architecture_is_killed_and_x32_numbers_denied() {
        let program = default_filter().unwrap();
        const AUDIT_ARCH_I386: u32 = 0x4000_0003;
        assert_eq!(run(&program, AUDIT_ARCH_I386, 20, [0; 6]), RET_KILL_PROCESS);
        if cfg!(target_arch = "x86_64") {
            let getpid = libc::SYS_getpid as u32;
            assert_eq!(
                run(&program, AUDIT_ARCH, getpid | X32_SYSCALL_BIT, [0; 6]),
                EPERM
            );
        }
    }
}
