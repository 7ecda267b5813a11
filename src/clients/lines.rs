//! The CLI's line input (`publish --file`, `wait --file`; a path, or `-` for stdin), read one
//! line at a time with each line bounded: a line longer than the limit is refused with its
//! number as soon as the limit is passed, and nothing after it is read. So an endless line
//! (`--file /dev/zero`) costs the limit in memory, not everything the source can give.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};

/// A line that could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// The file could not be opened.
    #[error("reading {source_name}: {error}")]
    Open {
        source_name: String,
        error: std::io::Error,
    },
    /// The line is longer than the limit; reading stopped there.
    #[error(
        "line {line}: longer than {limit} bytes, the request limit (DESIGN.md §3); nothing after it was read"
    )]
    TooLong { line: usize, limit: usize },
    /// Reading failed part-way.
    #[error("reading {source_name} at line {line}: {error}")]
    Read {
        source_name: String,
        line: usize,
        error: std::io::Error,
    },
}

/// The lines of one input, numbered from 1, without their `\n` or `\r\n`; each at most
/// `limit` bytes. Iteration ends after the first error.
pub struct Lines<R> {
    reader: R,
    source_name: String,
    limit: usize,
    line: usize,
    done: bool,
}

/// `--file PATH`, or stdin for `-`, as bounded lines.
pub fn open(path: &str, limit: usize) -> Result<Lines<Box<dyn BufRead>>, LineError> {
    if path == "-" {
        let stdin: Box<dyn BufRead> = Box::new(BufReader::new(std::io::stdin()));
        return Ok(Lines::new(stdin, "stdin", limit));
    }
    let source_name = format!("--file {path}");
    match File::open(path) {
        Ok(f) => Ok(Lines::new(Box::new(BufReader::new(f)), source_name, limit)),
        Err(error) => Err(LineError::Open { source_name, error }),
    }
}

impl<R: BufRead> Lines<R> {
    /// The lines of `reader`; `source_name` names it in errors (`--file F`, `stdin`).
    pub fn new(reader: R, source_name: impl Into<String>, limit: usize) -> Self {
        Self {
            reader,
            source_name: source_name.into(),
            limit,
            line: 0,
            done: false,
        }
    }

    /// The next line, reading at most the limit plus a `\r\n`.
    fn read_line(&mut self) -> Result<Option<Vec<u8>>, LineError> {
        let mut buf = Vec::new();
        let most = self.limit as u64 + 2;
        let n = (&mut self.reader)
            .take(most)
            .read_until(b'\n', &mut buf)
            .map_err(|error| LineError::Read {
                source_name: self.source_name.clone(),
                line: self.line + 1,
                error,
            })?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        let ended = buf.last() == Some(&b'\n');
        if ended {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        if buf.len() > self.limit || (!ended && n as u64 == most) {
            return Err(LineError::TooLong {
                line: self.line,
                limit: self.limit,
            });
        }
        Ok(Some(buf))
    }
}

impl<R: BufRead> Iterator for Lines<R> {
    /// `(line number, bytes)`.
    type Item = Result<(usize, Vec<u8>), LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read_line() {
            Ok(Some(bytes)) => Some(Ok((self.line, bytes))),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[u8], limit: usize) -> Vec<Result<(usize, Vec<u8>), String>> {
        Lines::new(text, "test", limit)
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
    }

    #[test]
    fn lines_are_numbered_and_lose_their_line_ends() {
        let got = lines(b"ab\r\n\ncd\nef", 4);
        let want: Vec<Result<(usize, Vec<u8>), String>> = vec![
            Ok((1, b"ab".to_vec())),
            Ok((2, vec![])),
            Ok((3, b"cd".to_vec())),
            Ok((4, b"ef".to_vec())),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn a_line_at_the_limit_passes_and_one_byte_more_stops_the_reading() {
        assert_eq!(lines(b"abcd\r\nx", 4).len(), 2);
        assert_eq!(lines(b"abcd", 4), vec![Ok((1, b"abcd".to_vec()))]);
        let got = lines(b"ok\nabcde\nnever read\n", 4);
        assert_eq!(got.len(), 2, "{got:?}");
        let e = got[1].as_ref().unwrap_err();
        assert!(e.starts_with("line 2: longer than 4 bytes"), "{e}");
    }

    #[test]
    fn an_endless_line_is_refused_after_reading_only_the_limit() {
        let mut zeros = std::io::repeat(0).take(u64::MAX);
        let mut reader = BufReader::new(&mut zeros);
        let got: Vec<_> = Lines::new(&mut reader, "zeros", 64).collect();
        assert!(matches!(
            got.as_slice(),
            [Err(LineError::TooLong { line: 1, limit: 64 })]
        ));
        // What was consumed: the limit, a \r\n allowance, and what the buffer read ahead.
        let consumed = u64::MAX - zeros.limit();
        assert!(consumed <= 64 + 2 + 8192, "{consumed} bytes read");
    }
}
