//! Trace files: one key per line, a CSV column, or libCacheSim's
//! oracleGeneral binary records — each plain or gzip-compressed.
//!
//! Keys become dense page ids `0..distinct` in order of first appearance, so
//! any key space (block numbers, 64-bit object hashes) fits the pool. Every
//! malformed record is an [`InputError`] naming the file and the line (or the
//! record and byte offset for binary input).

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// How a trace file is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// One unsigned integer key per line (decimal or `0x` hex). Blank lines,
    /// `#` comments and the LIRS traces' `*` breakpoint markers are skipped.
    Lines,
    /// Comma-separated values; the key is in `column`.
    Csv { column: Column, header: bool },
    /// libCacheSim's oracleGeneral: little-endian records of
    /// `u32 time, u64 id, u32 size, i64 next access` (24 bytes).
    Oracle,
}

/// A CSV column: 1-based number or a header name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    Number(usize),
    Name(String),
}

impl Format {
    /// The format a file name suggests (`.gz` is looked through):
    /// `.oracleGeneral`, `.oracleGeneral.bin` and `.bin` are oracleGeneral,
    /// `.csv` is CSV (`csv_column`), anything else one key per line.
    pub fn guess(path: &Path, csv_column: &Column, header: bool) -> Format {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        if name.ends_with(".oraclegeneral") || name.ends_with(".bin") {
            Format::Oracle
        } else if name.ends_with(".csv") {
            Format::Csv {
                column: csv_column.clone(),
                header,
            }
        } else {
            Format::Lines
        }
    }
}

/// Where and why a trace could not be read.
#[derive(Debug)]
pub struct InputError {
    pub file: PathBuf,
    /// "line 17", "record 3 (byte 72)", or empty for whole-file problems.
    pub at: String,
    pub msg: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.msg)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.at, self.msg)
        }
    }
}

impl std::error::Error for InputError {}

/// A trace as dense page ids.
#[derive(Debug)]
pub struct Trace {
    pub ids: Vec<u32>,
    pub distinct: usize,
}

/// Maps keys to dense ids in order of first appearance.
#[derive(Default)]
struct Dense {
    map: HashMap<u64, u32>,
    ids: Vec<u32>,
}

impl Dense {
    fn push(&mut self, key: u64) -> Result<(), String> {
        let next = self.map.len();
        let id = match self.map.get(&key) {
            Some(&id) => id,
            None => {
                let id = u32::try_from(next).map_err(|_| "more than 2^32 distinct keys")?;
                self.map.insert(key, id);
                id
            }
        };
        self.ids.push(id);
        Ok(())
    }
}

/// Reads `path` as `format`, stopping after `limit` requests.
pub fn read(path: &Path, format: &Format, limit: usize) -> Result<Trace, InputError> {
    let err = |at: String, msg: String| InputError {
        file: path.to_path_buf(),
        at,
        msg,
    };
    let file = File::open(path).map_err(|e| err(String::new(), format!("cannot open: {e}")))?;
    let mut raw = BufReader::with_capacity(1 << 16, file);
    // Gzip by its magic number, not by name.
    let gz = raw
        .fill_buf()
        .map(|b| b.starts_with(&[0x1f, 0x8b]))
        .unwrap_or(false);
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(raw))
    } else {
        Box::new(raw)
    };
    let mut dense = Dense::default();
    match format {
        Format::Oracle => read_oracle(reader, &mut dense, limit).map_err(|(at, m)| err(at, m))?,
        Format::Lines => {
            read_lines(reader, None, &mut dense, limit).map_err(|(at, m)| err(at, m))?
        }
        Format::Csv { column, header } => {
            read_lines(reader, Some((column, *header)), &mut dense, limit)
                .map_err(|(at, m)| err(at, m))?
        }
    }
    if dense.ids.is_empty() {
        return Err(err(String::new(), "no requests in the trace".into()));
    }
    Ok(Trace {
        distinct: dense.map.len(),
        ids: dense.ids,
    })
}

type Failure = (String, String);

fn read_oracle(mut r: Box<dyn Read>, dense: &mut Dense, limit: usize) -> Result<(), Failure> {
    const REC: usize = 24;
    let mut buf = vec![0u8; REC * 4096];
    let mut have = 0usize;
    let mut record = 0u64;
    loop {
        let n = r
            .read(&mut buf[have..])
            .map_err(|e| (format!("record {}", record + 1), format!("read error: {e}")))?;
        have += n;
        let whole = have / REC * REC;
        for rec in buf[..whole].chunks_exact(REC) {
            record += 1;
            let mut id = [0u8; 8];
            id.copy_from_slice(&rec[4..12]);
            let at = || format!("record {record} (byte {})", (record - 1) * REC as u64);
            dense.push(u64::from_le_bytes(id)).map_err(|m| (at(), m))?;
            if dense.ids.len() >= limit {
                return Ok(());
            }
        }
        buf.copy_within(whole..have, 0);
        have -= whole;
        if n == 0 {
            if have != 0 {
                return Err((
                    format!("record {} (byte {})", record + 1, record * REC as u64),
                    format!(
                        "truncated: {have} trailing bytes, an oracleGeneral record has {REC} \
                         (is this file oracleGeneral? a .zst file must be decompressed first)"
                    ),
                ));
            }
            return Ok(());
        }
    }
}

/// A key: an unsigned integer, decimal or `0x` hex.
fn parse_key(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn read_lines(
    r: Box<dyn Read>,
    csv: Option<(&Column, bool)>,
    dense: &mut Dense,
    limit: usize,
) -> Result<(), Failure> {
    let mut r = BufReader::with_capacity(1 << 16, r);
    let mut line = Vec::new();
    let mut lineno = 0u64;
    // The 0-based CSV column, once known.
    let mut col: Option<usize> = match csv {
        Some((Column::Number(n), _)) => Some(n - 1),
        _ => None,
    };
    let mut skip_header = matches!(csv, Some((Column::Name(_), _)) | Some((_, true)));
    loop {
        line.clear();
        let n = r
            .read_until(b'\n', &mut line)
            .map_err(|e| (format!("line {}", lineno + 1), format!("read error: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        lineno += 1;
        let at = || format!("line {lineno}");
        let text = std::str::from_utf8(&line).map_err(|_| {
            (
                at(),
                "not UTF-8 text (a binary trace? use --format oracle)".to_string(),
            )
        })?;
        let text = text.trim_end_matches(['\n', '\r']);
        if skip_header {
            skip_header = false;
            if let Some((Column::Name(name), _)) = csv {
                let i = text
                    .split(',')
                    .position(|h| h.trim() == name)
                    .ok_or_else(|| {
                        (
                            at(),
                            format!("no column named {name:?} in the header {text:?}"),
                        )
                    })?;
                col = Some(i);
            }
            continue;
        }
        let field = match col {
            None => {
                let t = text.trim();
                if t.is_empty() || t.starts_with('#') || t == "*" {
                    continue;
                }
                t
            }
            Some(i) => {
                if text.trim().is_empty() {
                    continue;
                }
                let f = text.split(',').nth(i).ok_or_else(|| {
                    (
                        at(),
                        format!(
                            "{} columns, the key is in column {}",
                            text.split(',').count(),
                            i + 1
                        ),
                    )
                })?;
                f.trim()
            }
        };
        let key = parse_key(field).ok_or_else(|| {
            let shown: String = field.chars().take(40).collect();
            (
                at(),
                format!("not a key: {shown:?} (keys are unsigned integers, decimal or 0x hex)"),
            )
        })?;
        dense.push(key).map_err(|m| (at(), m))?;
        if dense.ids.len() >= limit {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tmp(name: &str, bytes: &[u8]) -> PathBuf {
        let p = std::env::temp_dir().join(format!("trace-replay-{}-{name}", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn lines_plain_and_gzip_give_the_same_trace() {
        let text = b"# comment\n5\r\n7\n*\n\n5\n0x10\n";
        for (name, bytes) in [("a.txt", text.to_vec()), ("a.txt.gz", gz(text))] {
            let p = tmp(name, &bytes);
            let t = read(&p, &Format::Lines, usize::MAX).unwrap();
            assert_eq!(t.ids, vec![0, 1, 0, 2]);
            assert_eq!(t.distinct, 3);
            std::fs::remove_file(p).ok();
        }
    }

    #[test]
    fn bad_line_names_file_and_line() {
        let p = tmp("bad.txt", b"1\n2\nthree\n");
        let e = read(&p, &Format::Lines, usize::MAX).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("bad.txt: line 3: not a key: \"three\""), "{s}");
        std::fs::remove_file(p).ok();
    }

    #[test]
    fn csv_by_number_and_by_name() {
        let p = tmp("t.csv", b"time,key,size\n1,100,4\n2,200,4\n3,100,4\n");
        let by_name = Format::Csv {
            column: Column::Name("key".into()),
            header: true,
        };
        assert_eq!(read(&p, &by_name, usize::MAX).unwrap().ids, vec![0, 1, 0]);
        let by_number = Format::Csv {
            column: Column::Number(2),
            header: true,
        };
        assert_eq!(read(&p, &by_number, usize::MAX).unwrap().ids, vec![0, 1, 0]);
        let missing = Format::Csv {
            column: Column::Number(9),
            header: true,
        };
        let s = read(&p, &missing, usize::MAX).unwrap_err().to_string();
        assert!(
            s.contains("line 2: 3 columns, the key is in column 9"),
            "{s}"
        );
        std::fs::remove_file(p).ok();
    }

    #[test]
    fn oracle_records_and_truncation() {
        let mut b = Vec::new();
        for (i, id) in [9u64, 8, 9].into_iter().enumerate() {
            b.extend_from_slice(&(i as u32).to_le_bytes());
            b.extend_from_slice(&id.to_le_bytes());
            b.extend_from_slice(&1u32.to_le_bytes());
            b.extend_from_slice(&(-1i64).to_le_bytes());
        }
        let p = tmp("t.oracleGeneral", &b);
        assert_eq!(
            read(&p, &Format::Oracle, usize::MAX).unwrap().ids,
            vec![0, 1, 0]
        );
        assert_eq!(read(&p, &Format::Oracle, 2).unwrap().ids, vec![0, 1]);
        b.extend_from_slice(&[1, 2, 3]);
        std::fs::write(&p, &b).unwrap();
        let s = read(&p, &Format::Oracle, usize::MAX)
            .unwrap_err()
            .to_string();
        assert!(
            s.contains("record 4 (byte 72): truncated: 3 trailing bytes"),
            "{s}"
        );
        std::fs::remove_file(p).ok();
    }

    #[test]
    fn binary_as_lines_and_missing_files_are_errors() {
        let p = tmp("bin.txt", &[0xff, 0xfe, 0x00, b'\n']);
        let s = read(&p, &Format::Lines, usize::MAX)
            .unwrap_err()
            .to_string();
        assert!(s.contains("line 1: not UTF-8"), "{s}");
        std::fs::remove_file(&p).ok();
        let s = read(&p, &Format::Lines, usize::MAX)
            .unwrap_err()
            .to_string();
        assert!(s.contains("cannot open"), "{s}");
        let e = tmp("empty.txt", b"# nothing\n");
        let s = read(&e, &Format::Lines, usize::MAX)
            .unwrap_err()
            .to_string();
        assert!(s.contains("no requests"), "{s}");
        std::fs::remove_file(e).ok();
    }

    #[test]
    fn formats_guessed_from_names() {
        let c = Column::Number(1);
        assert_eq!(
            Format::guess(Path::new("x.oracleGeneral.bin"), &c, false),
            Format::Oracle
        );
        assert_eq!(
            Format::guess(Path::new("x.oracleGeneral.gz"), &c, false),
            Format::Oracle
        );
        assert!(matches!(
            Format::guess(Path::new("x.csv.gz"), &c, false),
            Format::Csv { .. }
        ));
        assert_eq!(
            Format::guess(Path::new("cpp.trace.gz"), &c, false),
            Format::Lines
        );
    }
}
