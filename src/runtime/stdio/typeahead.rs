//! What the host terminal sends the sandbox's terminal, less the NUL of a telnet-style Enter.
//!
//! Terminals reached through telnet, some serial consoles and web terminals send Enter as CR
//! NUL (RFC 854's "bare CR"). The shell that started `sandbox` reads the CR that ends the
//! command line, and the NUL is left waiting in the terminal's input: forwarded to the
//! sandbox's pty, its line discipline echoed it, so `sandbox run -- echo clean` showed
//! `^@clean`. A NUL first in the input, or right after a CR, is that padding and is dropped;
//! any other NUL (Ctrl-@ typed inside) passes.

/// Filters the host terminal's input on its way to the pty, a chunk at a time.
#[derive(Debug)]
pub struct EnterPadding {
    /// The last byte passed on was a CR (or nothing has been yet).
    after_cr: bool,
}

impl Default for EnterPadding {
    fn default() -> Self {
        Self { after_cr: true }
    }
}

impl EnterPadding {
    /// Removes the padding NULs from `chunk` in place, returning how many bytes remain.
    pub fn filter(&mut self, chunk: &mut [u8]) -> usize {
        let mut kept = 0;
        for i in 0..chunk.len() {
            let byte = chunk[i];
            if byte == 0 && self.after_cr {
                self.after_cr = false;
                continue;
            }
            self.after_cr = byte == b'\r';
            chunk[kept] = byte;
            kept += 1;
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> Vec<u8> {
        let mut filter = EnterPadding::default();
        let mut out = Vec::new();
        for chunk in chunks {
            let mut c = chunk.to_vec();
            let n = filter.filter(&mut c);
            out.extend_from_slice(&c[..n]);
        }
        out
    }

    #[test]
    fn the_nul_left_by_the_enter_that_started_sandbox_is_dropped() {
        assert_eq!(run(&[b"\0"]), b"");
        assert_eq!(run(&[b"\0ls\r"]), b"ls\r");
    }

    #[test]
    fn a_cr_nul_pair_becomes_a_cr_across_reads_too() {
        assert_eq!(run(&[b"ls\r\0pwd\r\0"]), b"ls\rpwd\r");
        assert_eq!(run(&[b"ls\r", b"\0pwd"]), b"ls\rpwd");
    }

    #[test]
    fn other_nuls_pass() {
        // Ctrl-@ typed inside (emacs' set-mark), and only one NUL of two after a CR.
        assert_eq!(run(&[b"a\0b"]), b"a\0b");
        assert_eq!(run(&[b"x", b"\0"]), b"x\0");
        assert_eq!(run(&[b"\r\0\0"]), b"\r\0");
    }
}
