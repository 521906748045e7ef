//! The store's write-ahead log: a plain file beside the redb file that takes each batch's
//! journal entry (its changes of accounts, sessions and stored answers) when the batch
//! changes nothing else, so such a batch costs one `pwrite` and, durable, one `fdatasync`
//! instead of a redb commit.
//!
//! A record is `magic, seq, len, crc32(seq ‖ len ‖ payload), payload`, little-endian.
//! Records are written one after the other from the start of the file; once everything in
//! them is folded into the redb tables by a durable commit, the writer starts again from
//! the start ([`Wal::restart`]). Reading stops at the first record that is torn (short, or
//! its checksum wrong) or older than the one before it — what follows is what an earlier
//! round left, already folded.
//!
//! The file is filled with zeros up to [`PREALLOCATED`] when created, so that a write
//! inside it changes no file metadata and `fdatasync` has only the data to flush (appending
//! to a growing file costs the file system a journal commit per sync as well).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: u32 = 0x4f43_534a; // "OCSJ"
const HEADER: usize = 4 + 8 + 4 + 4;
/// The size the file is filled to when created.
pub const PREALLOCATED: u64 = 8 << 20;

/// The log file and where the next record goes.
pub struct Wal {
    file: File,
    path: PathBuf,
    /// Where the next record is written.
    end: u64,
}

/// The records read at open: (seq, payload), in file order, seqs increasing.
pub type Records = Vec<(u64, Vec<u8>)>;

impl Wal {
    /// Opens (or creates) the log at `path` and reads its records; the next record is
    /// written after them.
    pub fn open(path: &Path) -> io::Result<(Self, Records)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len();
        if len < PREALLOCATED {
            let zeros = vec![0u8; 1 << 20];
            let mut at = len;
            while at < PREALLOCATED {
                let n = (PREALLOCATED - at).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], at)?;
                at += n as u64;
            }
            file.sync_all()?;
            // The new file's name must survive a crash as well.
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)?.sync_all()?;
            }
        }
        let bytes = std::fs::read(path)?;
        let (records, end) = scan(&bytes);
        Ok((
            Self {
                file,
                path: path.to_path_buf(),
                end,
            },
            records,
        ))
    }

    /// Writes records encoded by [`encode`] after the last one, and takes them to the disk
    /// when `sync`. On an error the next records are written in their place.
    pub fn write_encoded(&mut self, records: &[u8], sync: bool) -> io::Result<()> {
        let at = self.end;
        let done = self
            .file
            .write_all_at(records, at)
            .and_then(|()| if sync { self.file.sync_data() } else { Ok(()) });
        match done {
            Ok(()) => self.end = at + records.len() as u64,
            Err(_) => self.end = at,
        }
        done
    }

    /// The records written since the last [`Wal::restart`], read back from the file.
    pub fn records(&self) -> io::Result<Records> {
        let bytes = std::fs::read(&self.path)?;
        let end = usize::try_from(self.end)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        Ok(scan(&bytes[..end]).0)
    }

    /// The next record goes to the start of the file: every record written so far is
    /// folded into the tables by a durable commit, and reading at open stops where the new
    /// records end (the old ones after them are older).
    pub fn restart(&mut self) {
        self.end = 0;
    }
}

/// Appends record `seq` carrying `payload` to `out`, as the log holds it. (A payload is one
/// batch's journal entry, far below the 4 GiB a length holds; a longer one would be
/// written with a wrong length, fail its checksum and end the log when read.)
pub fn encode(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(seq, len, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

fn checksum(seq: u64, len: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(&len.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// The records of `bytes` from the start, up to the first torn or older one; and where
/// that one starts.
fn scan(bytes: &[u8]) -> (Records, u64) {
    let mut records: Records = Vec::new();
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + HEADER) {
        let word =
            |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let seq = u64::from(word(4)) | (u64::from(word(8)) << 32);
        let len = word(12);
        if word(0) != MAGIC || records.last().is_some_and(|(prev, _)| *prev >= seq) {
            break;
        }
        let start = at + HEADER;
        let Some(payload) = bytes.get(start..start + len as usize) else {
            break;
        };
        if checksum(seq, len, payload) != word(16) {
            break;
        }
        records.push((seq, payload.to_vec()));
        at = start + len as usize;
    }
    (records, at as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(wal: &mut Wal, seq: u64, payload: &[u8], sync: bool) {
        let mut record = Vec::new();
        encode(seq, payload, &mut record);
        wal.write_encoded(&record, sync).unwrap();
    }

    #[test]
    fn records_are_read_back_up_to_a_torn_or_older_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.wal");
        let (mut wal, records) = Wal::open(&path).unwrap();
        assert!(records.is_empty() && wal.records().unwrap().is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), PREALLOCATED);
        for seq in 1..=5u64 {
            write(
                &mut wal,
                seq,
                &vec![seq as u8; 100 * seq as usize],
                seq == 5,
            );
        }
        drop(wal);
        let (mut wal, records) = Wal::open(&path).unwrap();
        assert_eq!(
            records.iter().map(|r| r.0).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(records[2].1, vec![3u8; 300]);

        // A new round over the old one: the old records after it are older, not read.
        wal.restart();
        write(&mut wal, 6, b"six", false);
        write(&mut wal, 7, b"seven", true);
        drop(wal);
        let (mut wal, records) = Wal::open(&path).unwrap();
        assert_eq!(records, vec![(6, b"six".to_vec()), (7, b"seven".to_vec())]);
        // Appending continues after them.
        write(&mut wal, 8, b"eight", false);
        drop(wal);
        let (_, records) = Wal::open(&path).unwrap();
        assert_eq!(records.len(), 3);

        // A torn record (a byte of its payload never written) ends the log.
        let mut bytes = std::fs::read(&path).unwrap();
        let third = 2 * HEADER + 3 + 5 + HEADER;
        bytes[third] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, records) = Wal::open(&path).unwrap();
        assert_eq!(records.len(), 2);
        // So does a header cut short at the end of the file.
        std::fs::write(&path, &bytes[..HEADER + 3 + 10]).unwrap();
        let (_, records) = Wal::open(&path).unwrap();
        assert_eq!(records.len(), 1);
    }
}
