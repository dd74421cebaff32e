//! An append-only queue of records in segment files, for what a publisher could not
//! send yet: appended at the tail, read and acknowledged at the head, bounded in
//! bytes by dropping the oldest segment.
//!
//! A directory holds `NNNNNNNNNNNNNNNNNNNN.seg` files (oldest first by number), a
//! `cursor` (the segment and offset of the first unacknowledged record) and a `lock`
//! that one process at a time holds. A record is a 12-byte header — payload length,
//! samples in it, CRC-32 of both — and its payload. At open every record is checked:
//! a torn one (a crash mid-write, a file cut short) is cut off, a damaged one (its
//! checksum fails) is skipped; both are counted. Writes are not synced: a killed process
//! loses nothing it appended; a power cut may lose what the kernel had not written.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Bytes of a record's header: payload length, samples, CRC-32 (little-endian u32s).
const HEADER: u64 = 12;

/// What went wrong with a queue's files.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file could not be read, written or created.
    #[error("disk queue {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another process (or publisher) holds the queue.
    #[error(
        "disk queue {0} is in use by another publisher or process; each sink's publisher needs a queue of its \
         own (a reload that changes `telemetry_secret` needs a restart)"
    )]
    Locked(PathBuf),
    /// A record larger than the whole queue may hold.
    #[error("a record of {bytes} bytes does not fit in a disk queue of {max} bytes; raise `max_disk_mib`")]
    TooLarge {
        /// The record's size.
        bytes: u64,
        /// The queue's bound.
        max: u64,
    },
}

/// What opening a queue found cut off: records torn by a crash or damaged on disk.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Records lost.
    pub records: u64,
    /// Samples they held, as far as their headers could be read.
    pub samples: u64,
    /// Bytes cut off the segments' ends.
    pub bytes: u64,
}

/// The oldest unacknowledged record.
#[derive(Debug)]
pub enum Head {
    /// Its payload, intact.
    Record {
        /// Samples in it.
        samples: u32,
        /// What was appended.
        payload: Vec<u8>,
    },
    /// It was damaged after the queue was opened (its checksum fails); acknowledge it
    /// to skip it.
    Damaged {
        /// Samples in it, as its index says.
        samples: u32,
    },
}

/// A record's place in its segment.
#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: u64,
    len: u32,
    samples: u32,
}

/// One segment file and its unacknowledged records.
struct Segment {
    id: u64,
    file: File,
    size: u64,
    unread: VecDeque<Entry>,
}

/// A queue of records on disk (see the module's documentation).
pub struct SegmentLog {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// Oldest first; the last is written to. Never empty.
    segments: VecDeque<Segment>,
    cursor: File,
    /// Samples in unacknowledged records.
    samples: u64,
    /// Bytes of every segment file.
    bytes: u64,
    _lock: File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |source| LogError::Io { path: path.to_path_buf(), source }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

/// The segments of the queue in `dir`, oldest first.
fn segment_ids(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            name.to_str()?.strip_suffix(".seg")?.parse().ok()
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Bytes of the segment files of the queue in `dir` (none if it is not one), without
/// opening it: for a queue another process may hold.
pub fn bytes_in(dir: &Path) -> u64 {
    let ids = segment_ids(dir).unwrap_or_default();
    ids.into_iter().filter_map(|id| std::fs::metadata(segment_path(dir, id)).ok()).map(|m| m.len()).sum()
}

fn checksum(samples: u32, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&samples.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

impl SegmentLog {
    /// Opens (or creates) the queue in `dir`, bounded to `max_bytes` of segments,
    /// checking every record; returns it and what had to be cut off.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<(Self, Cut), LogError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join("lock");
        let lock =
            OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io(&lock_path))?;
        // SAFETY: flock on a descriptor this function owns; it has no memory effects.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(LogError::Locked(dir.to_path_buf()));
        }
        let cursor_path = dir.join("cursor");
        let cursor = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&cursor_path)
            .map_err(io(&cursor_path))?;
        let mut position = [0u8; 16];
        let (start_id, start_offset) = match cursor.read_exact_at(&mut position, 0) {
            Ok(()) => (
                u64::from_le_bytes(position[..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(position[8..].try_into().expect("8 bytes")),
            ),
            Err(_) => (0, 0),
        };
        let ids = segment_ids(dir).map_err(io(dir))?;
        let mut cut = Cut::default();
        let mut segments = VecDeque::new();
        let (mut samples, mut bytes) = (0, 0);
        for id in ids {
            let path = segment_path(dir, id);
            if id < start_id {
                // Read before the last stop, not yet removed.
                std::fs::remove_file(&path).map_err(io(&path))?;
                continue;
            }
            let segment = Self::check(&path, id, if id == start_id { start_offset } else { 0 }, &mut cut)?;
            samples += segment.unread.iter().map(|e| u64::from(e.samples)).sum::<u64>();
            bytes += segment.size;
            segments.push_back(segment);
        }
        if segments.is_empty() {
            let id = start_id.max(1);
            let path = segment_path(dir, id);
            let file = Self::create(&path)?;
            segments.push_back(Segment { id, file, size: 0, unread: VecDeque::new() });
        }
        let segment_bytes = (max_bytes / 8).clamp(64 << 10, 64 << 20);
        let log =
            Self { dir: dir.to_path_buf(), max_bytes, segment_bytes, segments, cursor, samples, bytes, _lock: lock };
        Ok((log, cut))
    }

    fn create(path: &Path) -> Result<File, LogError> {
        OpenOptions::new().create(true).truncate(false).read(true).append(true).open(path).map_err(io(path))
    }

    /// Reads a segment's records, cutting it at the first that is torn or damaged;
    /// those before `from` were acknowledged.
    fn check(path: &Path, id: u64, from: u64, cut: &mut Cut) -> Result<Segment, LogError> {
        let contents = std::fs::read(path).map_err(io(path))?;
        let mut unread = VecDeque::new();
        let mut offset = 0usize;
        while offset < contents.len() {
            let rest = &contents[offset..];
            let whole = rest.len() >= HEADER as usize && rest.len() - HEADER as usize >= u32_at(rest, 0) as usize;
            if !whole {
                // Torn: a write the process did not finish. Nothing follows it.
                cut.records += 1;
                if rest.len() >= 8 {
                    cut.samples += u64::from(u32_at(rest, 4));
                }
                cut.bytes += rest.len() as u64;
                tracing::warn!(segment = %path.display(), offset, bytes = rest.len(), "disk queue: a torn record is cut off");
                break;
            }
            let (len, samples, crc) = (u32_at(rest, 0), u32_at(rest, 4), u32_at(rest, 8));
            let end = HEADER as usize + len as usize;
            if offset as u64 >= from {
                if checksum(samples, &rest[HEADER as usize..end]) == crc {
                    unread.push_back(Entry { offset: offset as u64, len, samples });
                } else {
                    // Damaged in place: skipped, the records after it kept.
                    cut.records += 1;
                    cut.samples += u64::from(samples);
                    tracing::warn!(segment = %path.display(), offset, "disk queue: a damaged record is skipped");
                }
            }
            offset += end;
        }
        let file = Self::create(path)?;
        if offset < contents.len() {
            file.set_len(offset as u64).map_err(io(path))?;
        }
        Ok(Segment { id, file, size: offset as u64, unread })
    }

    /// Appends a record of `samples` samples; returns the samples of the oldest
    /// segments dropped to stay within the bound.
    pub fn append(&mut self, samples: u32, payload: &[u8]) -> Result<u64, LogError> {
        let len = HEADER + payload.len() as u64;
        if len > self.max_bytes || payload.len() > u32::MAX as usize {
            return Err(LogError::TooLarge { bytes: len, max: self.max_bytes });
        }
        let mut dropped = 0;
        if self.bytes + len > self.max_bytes && self.segments.len() == 1 {
            self.rotate()?;
        }
        while self.bytes + len > self.max_bytes && self.segments.len() > 1 {
            dropped += self.drop_oldest()?;
        }
        if self.last().size > 0 && self.last().size + len > self.segment_bytes {
            self.rotate()?;
        }
        let mut header = [0u8; HEADER as usize];
        header[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        header[4..8].copy_from_slice(&samples.to_le_bytes());
        header[8..].copy_from_slice(&checksum(samples, payload).to_le_bytes());
        let segment = self.segments.back_mut().expect("a queue always has a segment");
        // A crash between the two writes leaves a torn record, cut at the next open.
        let written = (&segment.file).write_all(&header).and_then(|()| (&segment.file).write_all(payload));
        if let Err(source) = written {
            // Whatever part was written is cut, so that the segment stays readable.
            let _ = segment.file.set_len(segment.size);
            return Err(LogError::Io { path: segment_path(&self.dir, segment.id), source });
        }
        segment.unread.push_back(Entry { offset: segment.size, len: payload.len() as u32, samples });
        segment.size += len;
        self.bytes += len;
        self.samples += u64::from(samples);
        Ok(dropped)
    }

    fn last(&self) -> &Segment {
        self.segments.back().expect("a queue always has a segment")
    }

    /// Starts a new segment to write to.
    fn rotate(&mut self) -> Result<(), LogError> {
        let id = self.last().id + 1;
        let file = Self::create(&segment_path(&self.dir, id))?;
        self.segments.push_back(Segment { id, file, size: 0, unread: VecDeque::new() });
        Ok(())
    }

    /// Removes the oldest segment; returns its unacknowledged samples.
    fn drop_oldest(&mut self) -> Result<u64, LogError> {
        let oldest = self.segments.pop_front().expect("more than one segment");
        let lost: u64 = oldest.unread.iter().map(|e| u64::from(e.samples)).sum();
        self.samples -= lost;
        self.bytes -= oldest.size;
        let path = segment_path(&self.dir, oldest.id);
        std::fs::remove_file(&path).map_err(io(&path))?;
        let next = self.segments.front().map(|s| s.id).expect("more than one segment");
        self.save_cursor(next, 0)?;
        Ok(lost)
    }

    /// The oldest unacknowledged record, if any.
    pub fn head(&mut self) -> Result<Option<Head>, LogError> {
        self.forget_read()?;
        let segment = self.segments.front().expect("a queue always has a segment");
        let Some(entry) = segment.unread.front().copied() else { return Ok(None) };
        let (mut header, mut payload) = ([0u8; HEADER as usize], vec![0u8; entry.len as usize]);
        let path = || segment_path(&self.dir, segment.id);
        segment.file.read_exact_at(&mut header, entry.offset).map_err(io(&path()))?;
        segment.file.read_exact_at(&mut payload, entry.offset + HEADER).map_err(io(&path()))?;
        if u32_at(&header, 0) != entry.len || checksum(entry.samples, &payload) != u32_at(&header, 8) {
            return Ok(Some(Head::Damaged { samples: entry.samples }));
        }
        Ok(Some(Head::Record { samples: entry.samples, payload }))
    }

    /// The oldest record is done with (sent, or skipped): the next one is the head.
    pub fn acknowledge(&mut self) -> Result<(), LogError> {
        self.forget_read()?;
        let segment = self.segments.front_mut().expect("a queue always has a segment");
        let Some(entry) = segment.unread.pop_front() else { return Ok(()) };
        self.samples -= u64::from(entry.samples);
        let id = segment.id;
        self.save_cursor(id, entry.offset + HEADER + u64::from(entry.len))?;
        self.forget_read()
    }

    /// Removes the leading segments that are read through, except the one written to.
    fn forget_read(&mut self) -> Result<(), LogError> {
        while self.segments.len() > 1 && self.segments.front().is_some_and(|s| s.unread.is_empty()) {
            self.drop_oldest()?;
        }
        Ok(())
    }

    fn save_cursor(&self, id: u64, offset: u64) -> Result<(), LogError> {
        let mut position = [0u8; 16];
        position[..8].copy_from_slice(&id.to_le_bytes());
        position[8..].copy_from_slice(&offset.to_le_bytes());
        self.cursor.write_all_at(&position, 0).map_err(io(&self.dir.join("cursor")))
    }

    /// Samples in unacknowledged records.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Bytes of the segment files.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(log: &mut SegmentLog) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(head) = log.head().unwrap() {
            match head {
                Head::Record { payload, .. } => out.push(payload),
                Head::Damaged { .. } => panic!("damaged"),
            }
            log.acknowledge().unwrap();
        }
        out
    }

    #[test]
    fn records_come_back_in_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, cut) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(cut, Cut::default());
        for i in 0..100u32 {
            assert_eq!(log.append(i, &vec![i as u8; 5000]).unwrap(), 0);
        }
        assert_eq!(log.samples(), (0..100).sum::<u32>() as u64);
        for _ in 0..10 {
            log.acknowledge().unwrap();
        }
        assert!(std::fs::read_dir(dir.path()).unwrap().count() > 4, "several segments");
        drop(log);
        let (mut log, cut) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(cut, Cut::default());
        assert_eq!(log.samples(), (10..100).sum::<u32>() as u64, "acknowledged records stay acknowledged");
        let read = records(&mut log);
        assert_eq!(read, (10..100u32).map(|i| vec![i as u8; 5000]).collect::<Vec<_>>());
        assert_eq!(log.samples(), 0);
        let segments = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".seg"));
        assert_eq!(segments.count(), 1, "segments read through are removed");
    }

    #[test]
    fn the_bound_drops_the_oldest_segment_and_counts_it() {
        let dir = tempfile::tempdir().unwrap();
        let max = 1 << 20;
        let (mut log, _) = SegmentLog::open(dir.path(), max).unwrap();
        let mut dropped = 0;
        for i in 0..1000u32 {
            dropped += log.append(10, &i.to_le_bytes().repeat(1000)).unwrap();
            assert!(log.bytes() <= max, "within the bound after {i}");
        }
        let on_disk: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            .map(|e| e.metadata().unwrap().len())
            .sum();
        assert!(on_disk <= max, "{on_disk} bytes on disk");
        assert_eq!(dropped + log.samples(), 10_000, "every sample is either queued or counted as dropped");
        let read = records(&mut log);
        let first = u32::from_le_bytes(read[0][..4].try_into().unwrap());
        assert_eq!(first as usize + read.len(), 1000, "the newest are kept, in order");
        assert!(matches!(log.append(1, &vec![0; 2 << 20]), Err(LogError::TooLarge { .. })));
    }

    #[test]
    fn a_torn_record_is_cut_and_counted_and_the_rest_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(dir.path(), 800 << 10).unwrap();
        for i in 0..40u32 {
            log.append(7, &vec![i as u8; 10_000]).unwrap();
        }
        drop(log);
        // Cut the first segment in the middle of its third record.
        let first = segment_path(dir.path(), 1);
        let len = std::fs::metadata(&first).unwrap().len();
        let at = 2 * (HEADER + 10_000) + 100;
        std::fs::OpenOptions::new().write(true).open(&first).unwrap().set_len(at).unwrap();
        let records_in_first = len / (HEADER + 10_000);
        let (mut log, cut) = SegmentLog::open(dir.path(), 800 << 10).unwrap();
        assert_eq!((cut.records, cut.samples, cut.bytes), (1, 7, 100));
        let read = records(&mut log);
        assert_eq!(read.len() as u64, 40 - (records_in_first - 2));
        assert_eq!(read[2][0] as u64, records_in_first, "the next segment follows the cut");
        // A damaged payload is found when read, too.
        log.append(3, b"hello").unwrap();
        let last = log.last();
        let offset = last.unread[0].offset + HEADER;
        let path = segment_path(dir.path(), last.id);
        // Not through the queue's own handle: it appends whatever the offset.
        std::fs::OpenOptions::new().write(true).open(path).unwrap().write_all_at(b"j", offset).unwrap();
        assert!(matches!(log.head().unwrap(), Some(Head::Damaged { samples: 3 })));
        log.acknowledge().unwrap();
        assert!(log.head().unwrap().is_none());
    }

    #[test]
    fn a_damaged_record_is_skipped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
        for i in 0..3u8 {
            log.append(5, &[i; 100]).unwrap();
        }
        drop(log);
        let first = segment_path(dir.path(), 1);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&first)
            .unwrap()
            .write_all_at(b"j", HEADER + 100 + HEADER)
            .unwrap();
        let (mut log, cut) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
        assert_eq!((cut.records, cut.samples, cut.bytes), (1, 5, 0));
        assert_eq!(records(&mut log), [vec![0u8; 100], vec![2u8; 100]]);
    }

    #[test]
    fn one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let _held = SegmentLog::open(dir.path(), 1 << 20).unwrap();
        assert!(matches!(SegmentLog::open(dir.path(), 1 << 20), Err(LogError::Locked(_))));
    }
}
