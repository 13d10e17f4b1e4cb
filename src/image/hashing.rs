//! A reader that hashes and counts what passes through it.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use crate::image::digest::Digest;

pub struct HashingReader<R, F: FnMut(u64)> {
    inner: R,
    hasher: Sha256,
    count: u64,
    on_read: F,
}

impl<R: Read, F: FnMut(u64)> HashingReader<R, F> {
    pub fn new(inner: R, on_read: F) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
            on_read,
        }
    }

    /// Reads to the end (trailing bytes count towards the digest), then returns it.
    pub fn drain(mut self) -> io::Result<(Digest, u64, R)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((Digest::from_hasher(self.hasher), self.count, self.inner))
    }
}

impl<R: Read, F: FnMut(u64)> Read for HashingReader<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        if n > 0 {
            (self.on_read)(n as u64);
        }
        Ok(n)
    }
}
