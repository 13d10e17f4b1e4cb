//! The monitor's words to pid 1 on the control pipe, one byte each, in the order it says
//! them: `IN_CGROUPS` right after the clone (it has moved pid 1 into its cgroups, or had
//! systemd do it), `FUSE_READY` when pid 1 asked for a FUSE server, then `GO` (start the
//! command). pid 1 waits for them at different points, so a word may come before it is
//! waited for.

use std::os::fd::BorrowedFd;

pub const IN_CGROUPS: u8 = b'c';
pub const FUSE_READY: u8 = b'f';
pub const GO: u8 = b'g';

/// pid 1's end of the control pipe.
pub struct Control<'fd> {
    fd: BorrowedFd<'fd>,
    in_cgroups: bool,
}

impl<'fd> Control<'fd> {
    pub fn new(fd: BorrowedFd<'fd>) -> Self {
        Self {
            fd,
            in_cgroups: false,
        }
    }

    /// Waits for `word`. False when the monitor said something else or is gone: it reports
    /// why and ends us.
    pub fn wait_for(&mut self, word: u8) -> bool {
        if word == IN_CGROUPS && self.in_cgroups {
            return true;
        }
        loop {
            let mut byte = [0u8; 1];
            if sys::read_some(self.fd, &mut byte) != Some(1) {
                return false;
            }
            if byte[0] == IN_CGROUPS && word != IN_CGROUPS {
                self.in_cgroups = true;
                continue;
            }
            return byte[0] == word;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd as _;

    #[test]
    fn a_word_said_before_it_is_waited_for_is_kept() {
        let (read, write) = sys::pipe().unwrap();
        assert!(sys::write_all(write.as_fd(), &[IN_CGROUPS, FUSE_READY, GO]));
        let mut control = Control::new(read.as_fd());
        assert!(control.wait_for(FUSE_READY));
        assert!(control.wait_for(IN_CGROUPS));
        assert!(control.wait_for(GO));
        drop(write);
        assert!(!control.wait_for(GO), "the monitor is gone");
    }

    #[test]
    fn another_word_than_the_one_waited_for_is_refused() {
        let (read, write) = sys::pipe().unwrap();
        assert!(sys::write_all(write.as_fd(), &[GO]));
        assert!(!Control::new(read.as_fd()).wait_for(FUSE_READY));
    }
}
