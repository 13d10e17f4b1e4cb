//! A gzip writer that compresses on every core and whose bytes depend only on its input.
//!
//! The input is cut into fixed chunks, each deflated on its own (no dictionary carried over,
//! as `pigz --independent` does) and ended on a byte boundary, so the chunks can be made in
//! parallel and joined in order. A chunk whose sample does not shrink (a jar, an archive, a
//! compressed image) is stored as it is instead of deflated: deflating random bytes costs as
//! much as deflating text and gains nothing. Every decision depends on the chunk's own bytes,
//! never on the thread count or timing, so two machines write the same blob.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress};

/// Input bytes per independently deflated chunk.
const CHUNK: usize = 1 << 20;
/// The part of a chunk deflated first to see whether the chunk shrinks at all.
const SAMPLE: usize = 32 << 10;
/// The most bytes one stored block holds (its length field is 16 bits).
const STORED_MAX: usize = 65_535;
/// A gzip header: deflate, no flags, no time, no extra flags, OS unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
/// The final deflate block: an empty fixed-Huffman block with BFINAL set.
const LAST_BLOCK: [u8; 2] = [0x03, 0x00];

type Job = (u64, Vec<u8>);
type Done = (u64, io::Result<Vec<u8>>);

/// Gzip-compresses what is written to it into `inner`, on `threads` worker threads.
pub struct ParallelGzip<W: Write> {
    inner: Option<W>,
    buffer: Vec<u8>,
    crc: crc32fast::Hasher,
    total: u64,
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    /// Chunks deflated but waiting for an earlier one.
    waiting: BTreeMap<u64, Vec<u8>>,
    next_in: u64,
    next_out: u64,
    window: u64,
}

impl<W: Write> ParallelGzip<W> {
    /// A writer using the machine's cores (at most 4).
    pub fn new(inner: W) -> io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        Self::with_threads(inner, threads)
    }

    /// A writer using `threads` worker threads (the output is the same for any count).
    pub fn with_threads(mut inner: W, threads: usize) -> io::Result<Self> {
        inner.write_all(&HEADER)?;
        let threads = threads.max(1);
        let (jobs, queue) = mpsc::sync_channel::<Job>(threads);
        let (finished, done) = mpsc::channel::<Done>();
        let queue = Arc::new(Mutex::new(queue));
        let mut workers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let queue = Arc::clone(&queue);
            let finished = finished.clone();
            workers.push(std::thread::spawn(move || loop {
                let job = match queue.lock() {
                    Ok(queue) => queue.recv(),
                    Err(_) => return,
                };
                let Ok((index, data)) = job else { return };
                if finished.send((index, encode_chunk(&data))).is_err() {
                    return;
                }
            }));
        }
        Ok(Self {
            inner: Some(inner),
            buffer: Vec::with_capacity(CHUNK),
            crc: crc32fast::Hasher::new(),
            total: 0,
            jobs: Some(jobs),
            done,
            workers,
            waiting: BTreeMap::new(),
            next_in: 0,
            next_out: 0,
            window: 2 * threads as u64 + 2,
        })
    }

    fn inner(&mut self) -> io::Result<&mut W> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::other("the gzip stream is finished"))
    }

    /// Hands the buffered chunk to the workers.
    fn dispatch(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("the gzip stream is finished"))?;
        jobs.send((self.next_in, data))
            .map_err(|_| io::Error::other("a gzip worker thread ended"))?;
        self.next_in += 1;
        // Keep at most `window` chunks in flight: wait for the oldest when there are more.
        while self.next_in - self.next_out > self.window {
            self.receive(true)?;
        }
        while self.receive(false)? {}
        Ok(())
    }

    /// Takes one finished chunk (waiting for it when `block`) and writes every chunk that is
    /// next in order. `false` when there was none to take.
    fn receive(&mut self, block: bool) -> io::Result<bool> {
        let (index, encoded) = if block {
            self.done
                .recv()
                .map_err(|_| io::Error::other("a gzip worker thread ended"))?
        } else {
            match self.done.try_recv() {
                Ok(done) => done,
                Err(_) => return Ok(false),
            }
        };
        self.waiting.insert(index, encoded?);
        while let Some(bytes) = self.waiting.remove(&self.next_out) {
            self.inner()?.write_all(&bytes)?;
            self.next_out += 1;
        }
        Ok(true)
    }

    /// Writes the rest, the last block and the trailer; the inner writer back.
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch()?;
        self.jobs = None;
        while self.next_out < self.next_in {
            self.receive(true)?;
        }
        let crc = self.crc.clone().finalize();
        let total = self.total;
        let inner = self.inner()?;
        inner.write_all(&LAST_BLOCK)?;
        inner.write_all(&crc.to_le_bytes())?;
        // ISIZE: the input's length modulo 2^32, as gzip defines it.
        inner.write_all(&((total & 0xffff_ffff) as u32).to_le_bytes())?;
        self.inner
            .take()
            .ok_or_else(|| io::Error::other("the gzip stream is finished"))
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CHUNK - self.buffer.len());
        self.buffer.extend_from_slice(&buf[..n]);
        self.crc.update(&buf[..n]);
        self.total += n as u64;
        if self.buffer.len() == CHUNK {
            self.dispatch()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for ParallelGzip<W> {
    fn drop(&mut self) {
        // Closing the queue ends the workers; they are joined so none outlives the writer.
        self.jobs = None;
        while self.done.try_recv().is_ok() {}
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// One chunk as deflate blocks ending on a byte boundary, none of them final.
fn encode_chunk(data: &[u8]) -> io::Result<Vec<u8>> {
    let sample = &data[..data.len().min(SAMPLE)];
    // Less than 1/64 smaller: stored (the sample's deflate is cheap next to the chunk's).
    let shrinks = |raw: usize, packed: usize| packed * 64 < raw * 63;
    if !shrinks(sample.len(), deflate(sample)?.len()) {
        return Ok(stored(data));
    }
    let packed = deflate(data)?;
    if packed.len() >= stored_len(data.len()) {
        return Ok(stored(data));
    }
    Ok(packed)
}

/// `data` deflated at the fast level by a compressor of its own, ended by a sync flush.
fn deflate(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut compress = Compress::new(Compression::fast(), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(4096));
        }
        let consumed = usize::try_from(compress.total_in()).map_err(io::Error::other)?;
        compress
            .compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        // A sync flush is complete once all input is in and output space was left over.
        if compress.total_in() == data.len() as u64 && out.len() < out.capacity() {
            return Ok(out);
        }
    }
}

fn stored_len(len: usize) -> usize {
    len + 5 * len.div_ceil(STORED_MAX)
}

/// `data` as stored (uncompressed) blocks.
fn stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stored_len(data.len()));
    for piece in data.chunks(STORED_MAX) {
        // BFINAL 0, BTYPE 00, padded to the byte; then LEN and its complement.
        let len = piece.len() as u16;
        out.push(0);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Text, then bytes that do not compress, then text again, not a multiple of a chunk.
    fn mixed() -> Vec<u8> {
        let mut data = b"a line of text, as class files and docs are\n".repeat(60_000);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..(3 * CHUNK / 2) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.push((x >> 24) as u8);
        }
        data.extend(b"tail\n".repeat(1000));
        data
    }

    fn gzip(data: &[u8], threads: usize) -> Vec<u8> {
        let mut writer = ParallelGzip::with_threads(Vec::new(), threads).unwrap();
        for piece in data.chunks(100_000) {
            writer.write_all(piece).unwrap();
        }
        writer.finish().unwrap()
    }

    #[test]
    fn decompresses_to_the_input() {
        let data = mixed();
        let packed = gzip(&data, 2);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        assert!(packed.len() < data.len(), "the text shrank");
    }

    #[test]
    fn the_bytes_do_not_depend_on_the_thread_count() {
        let data = mixed();
        assert_eq!(gzip(&data, 1), gzip(&data, 3));
    }

    #[test]
    fn empty_input_is_a_valid_empty_gzip() {
        let packed = gzip(&[], 2);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }

    #[test]
    fn random_bytes_are_stored_not_deflated() {
        let data = mixed();
        let random = &data[60_000 * 44..60_000 * 44 + CHUNK];
        assert_eq!(encode_chunk(random).unwrap(), stored(random));
    }
}
