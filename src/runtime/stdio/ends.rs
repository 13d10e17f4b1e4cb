//! The two ends of a command's stdio as the plan decides it (`plan::Stdio`): what the
//! command's process gets as its fds 0-2, and what the monitor keeps to relay or read.

use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};

use crate::runtime::plan::{Stdio, Stream};

/// What the command's side is given.
#[derive(Default)]
pub struct CommandSide {
    /// For `Terminal` in a new container: the socket pid 1 sends the pty master on.
    pub console: Option<OwnedFd>,
    /// The fds that become 0, 1 and 2 (pipe ends; for `Terminal`, the pty slave, which the
    /// process that opens the pty puts here).
    pub fds: [Option<OwnedFd>; 3],
}

impl CommandSide {
    /// The fds that become the command's 0-2: the terminal's slave in all three, else each
    /// pipe end (none where the caller's own fd stays or /dev/null is opened).
    pub fn for_exec(&self, stdio: Stdio) -> [Option<BorrowedFd<'_>>; 3] {
        let fd = |n: usize| self.fds[n].as_ref().map(|f| f.as_fd());
        match stdio {
            Stdio::Terminal => [fd(0); 3],
            _ => [fd(0), fd(1), fd(2)],
        }
    }
}

/// What the monitor keeps.
#[derive(Default)]
pub struct MonitorSide {
    /// For `Terminal` in a new container: where the pty master comes from.
    pub console: Option<OwnedFd>,
    /// The pty master (`Terminal`).
    pub master: Option<OwnedFd>,
    /// The captured output (`Capture`).
    pub capture: Option<OwnedFd>,
    /// Where what is read from our stdin goes (a relayed stdin), non-blocking.
    pub stdin: Option<OwnedFd>,
    /// What is copied to our stdout and stderr (relayed).
    pub outputs: [Option<OwnedFd>; 2],
}

/// Makes the pipes (and the console socket when `console`) for `stdio`.
pub fn prepare(stdio: Stdio, console: bool) -> std::io::Result<(MonitorSide, CommandSide)> {
    let mut ours = MonitorSide::default();
    let mut theirs = CommandSide::default();
    match stdio {
        Stdio::Inherit => {}
        Stdio::Terminal => {
            if console {
                let (a, b) = sys::fd_socket_pair()?;
                ours.console = Some(a);
                theirs.console = Some(b);
            }
        }
        Stdio::Capture => {
            let (read, write) = sys::pipe()?;
            ours.capture = Some(read);
            theirs.fds[1] = Some(write.try_clone()?);
            theirs.fds[2] = Some(write);
        }
        Stdio::Streams(streams) => {
            for (n, stream) in streams.iter().enumerate() {
                if *stream != Stream::Relay {
                    continue;
                }
                let (read, write) = sys::pipe()?;
                if n == 0 {
                    sys::set_nonblocking(write.as_fd(), true)?;
                    ours.stdin = Some(write);
                    theirs.fds[0] = Some(read);
                } else {
                    ours.outputs[n - 1] = Some(read);
                    theirs.fds[n] = Some(write);
                }
            }
        }
    }
    Ok((ours, theirs))
}
