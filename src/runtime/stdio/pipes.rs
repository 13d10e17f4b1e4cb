//! Relaying the caller's stdio through pipes (`plan::Stream::Relay`): our stdin into the
//! command's, its stdout and stderr out to ours. The monitor's loop registers these in its poll
//! and services them when ready; nothing here blocks on a full pipe.

use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};

pub struct Relays {
    stdin: std::io::Stdin,
    /// Where our stdin goes, until our stdin ends (then it is closed: the command sees EOF)
    /// or the command stops reading.
    to_command: Option<OwnedFd>,
    /// Read from our stdin, not yet taken by the pipe.
    pending: Vec<u8>,
    /// The command's stdout and stderr pipes, until they end.
    from_command: [Option<OwnedFd>; 2],
    /// Where each is in the poll list of this round.
    stdin_at: Option<usize>,
    to_command_at: Option<usize>,
    from_command_at: [Option<usize>; 2],
}

impl Relays {
    /// `stdin`: the command's stdin pipe (non-blocking); `outputs`: its stdout and stderr.
    pub fn new(stdin: Option<OwnedFd>, outputs: [Option<OwnedFd>; 2]) -> Self {
        Self {
            stdin: std::io::stdin(),
            to_command: stdin,
            pending: Vec::new(),
            from_command: outputs,
            stdin_at: None,
            to_command_at: None,
            from_command_at: [None, None],
        }
    }

    /// Adds what to wait for this round to `polls`.
    pub fn register<'p>(&'p mut self, polls: &mut Vec<sys::PollFd<'p>>) {
        let mut add = |fd: BorrowedFd<'p>, flags| {
            polls.push(sys::PollFd::new(fd, flags));
            Some(polls.len() - 1)
        };
        (self.stdin_at, self.to_command_at) = match &self.to_command {
            Some(pipe) if !self.pending.is_empty() => {
                (None, add(pipe.as_fd(), sys::PollFlags::POLLOUT))
            }
            Some(_) => (add(self.stdin.as_fd(), sys::PollFlags::POLLIN), None),
            None => (None, None),
        };
        for n in 0..2 {
            self.from_command_at[n] = self.from_command[n]
                .as_ref()
                .and_then(|fd| add(fd.as_fd(), sys::PollFlags::POLLIN));
        }
    }

    /// Moves what is ready.
    pub fn service(&mut self, ready: &[bool], buf: &mut [u8]) {
        let is_ready = |at: Option<usize>| at.is_some_and(|i| ready.get(i) == Some(&true));
        if is_ready(self.stdin_at) {
            match sys::read_some(self.stdin.as_fd(), buf) {
                Some(n) => self.pending.extend_from_slice(&buf[..n]),
                // Our stdin ended: so does the command's.
                None => self.to_command = None,
            }
        }
        if let Some(pipe) = self
            .to_command
            .as_ref()
            .filter(|_| is_ready(self.to_command_at))
        {
            match sys::write_some(pipe.as_fd(), &self.pending) {
                Some(n) => {
                    self.pending.drain(..n);
                }
                // The command closed its stdin.
                None => {
                    self.to_command = None;
                    self.pending.clear();
                }
            }
        }
        for n in 0..2 {
            let ready = is_ready(self.from_command_at[n]);
            if let Some(pipe) = self.from_command[n].as_ref().filter(|_| ready) {
                if !copy_out(pipe.as_fd(), n, buf) {
                    self.from_command[n] = None;
                }
            }
        }
    }

    /// Copies what the command wrote just before it ended, within a bound.
    pub fn drain(&mut self, buf: &mut [u8]) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        for n in 0..2 {
            while let Some(pipe) = self.from_command[n].as_ref() {
                if std::time::Instant::now() > deadline
                    || !sys::readable(pipe.as_fd(), 100)
                    || !copy_out(pipe.as_fd(), n, buf)
                {
                    self.from_command[n] = None;
                }
            }
        }
    }
}

/// Copies one read of `pipe` to our stdout (`n` 0) or stderr (1); false at its end.
fn copy_out(pipe: BorrowedFd<'_>, n: usize, buf: &mut [u8]) -> bool {
    match sys::read_some(pipe, buf) {
        Some(read) => {
            let chunk = &buf[..read];
            if n == 0 {
                sys::write_all(std::io::stdout().as_fd(), chunk);
            } else {
                sys::write_all(std::io::stderr().as_fd(), chunk);
            }
            true
        }
        None => false,
    }
}
