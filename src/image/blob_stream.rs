//! A blob handed from the thread making it to the thread uploading it, as it is made: a push
//! of a setup layer never compressed before uploads while it compresses.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Condvar, Mutex};

use crate::image::digest::Digest;

/// A blob of a prepared image: what a finished stream gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
}

/// At most this many pieces made and not yet taken: the maker waits beyond it.
const QUEUED_MAX: usize = 3;

pub struct BlobStream {
    /// The size of the pieces handed over (the last may be smaller).
    piece: usize,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Vec<u8>>,
    end: Option<Result<Blob, String>>,
    /// The uploader gave up: the maker stops too.
    abandoned: bool,
}

/// What the uploader gets next.
pub enum Taken {
    /// The next piece (never empty).
    Bytes(Vec<u8>),
    /// All pieces were taken: the blob as made.
    End(Blob),
    /// The maker failed.
    Failed(String),
}

impl BlobStream {
    /// A stream handing over pieces of `piece` bytes.
    pub fn new(piece: usize) -> Self {
        Self {
            piece: piece.max(1),
            state: Mutex::default(),
            changed: Condvar::new(),
        }
    }

    /// The maker ended: the blob it made, or why it failed.
    pub fn ended(&self, result: Result<Blob, String>) {
        if let Ok(mut state) = self.state.lock() {
            state.end.get_or_insert(result);
        }
        self.changed.notify_all();
    }

    /// The uploader stops taking: the maker's next piece fails.
    pub fn abandon(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.abandoned = true;
            state.queue.clear();
        }
        self.changed.notify_all();
    }

    /// The next piece, waiting for it; the end once every piece was taken.
    pub fn take(&self) -> Taken {
        let panicked = || Taken::Failed("the thread making the blob panicked".into());
        let Ok(mut state) = self.state.lock() else {
            return panicked();
        };
        loop {
            if let Some(Err(e)) = &state.end {
                return Taken::Failed(e.clone());
            }
            if let Some(piece) = state.queue.pop_front() {
                self.changed.notify_all();
                return Taken::Bytes(piece);
            }
            if let Some(Ok(blob)) = &state.end {
                return Taken::End(blob.clone());
            }
            state = match self.changed.wait(state) {
                Ok(state) => state,
                Err(_) => return panicked(),
            };
        }
    }

    /// Hands a piece over (the maker's thread assembled it, so taking it copies nothing).
    fn push(&self, piece: Vec<u8>) -> io::Result<()> {
        let gone = || io::Error::other("the upload of this blob stopped");
        let Ok(mut state) = self.state.lock() else {
            return Err(gone());
        };
        while state.queue.len() >= QUEUED_MAX && !state.abandoned {
            state = self.changed.wait(state).map_err(|_| gone())?;
        }
        if state.abandoned {
            return Err(gone());
        }
        state.queue.push_back(piece);
        drop(state);
        self.changed.notify_all();
        Ok(())
    }
}

/// Writes to `inner` and, in pieces, to the stream; `finish` hands over the last piece.
pub struct Tee<'a, W> {
    inner: W,
    stream: &'a BlobStream,
    filling: Vec<u8>,
}

impl<'a, W: Write> Tee<'a, W> {
    pub fn new(inner: W, stream: &'a BlobStream) -> Self {
        Self {
            inner,
            stream,
            filling: Vec::with_capacity(stream.piece),
        }
    }

    /// Hands over what is left; the inner writer back.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.filling.is_empty() {
            self.stream.push(std::mem::take(&mut self.filling))?;
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.stream.piece - self.filling.len();
        let n = self.inner.write(&buf[..buf.len().min(room)])?;
        self.filling.extend_from_slice(&buf[..n]);
        if self.filling.len() == self.stream.piece {
            let full = std::mem::replace(&mut self.filling, Vec::with_capacity(self.stream.piece));
            self.stream.push(full)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Digest;

    fn blob() -> Blob {
        Blob {
            digest: Digest::of_bytes(b"abc"),
            size: 3,
            media_type: "m".into(),
        }
    }

    #[test]
    fn bytes_come_in_order_in_pieces_then_the_end() {
        let stream = BlobStream::new(2);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let mut tee = Tee::new(Vec::new(), &stream);
                tee.write_all(b"ab").unwrap();
                tee.write_all(b"cde").unwrap();
                assert_eq!(tee.finish().unwrap(), b"abcde");
                stream.ended(Ok(blob()));
            });
            let mut got = Vec::new();
            let end = loop {
                match stream.take() {
                    Taken::Bytes(b) => got.push(b),
                    Taken::End(blob) => break blob,
                    Taken::Failed(e) => panic!("{e}"),
                }
            };
            assert_eq!(got, [b"ab".to_vec(), b"cd".to_vec(), b"e".to_vec()]);
            assert_eq!(end, blob());
        });
    }

    #[test]
    fn a_failed_maker_is_reported_and_an_abandoned_upload_stops_the_maker() {
        let stream = BlobStream::new(1);
        stream.ended(Err("disk full".into()));
        assert!(matches!(stream.take(), Taken::Failed(e) if e == "disk full"));
        let stream = BlobStream::new(1);
        stream.abandon();
        assert!(Tee::new(Vec::new(), &stream).write_all(b"x").is_err());
    }
}
