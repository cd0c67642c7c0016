//! CSV extracts as the BA data warehouse exports them: `;`, `"`, a header row, UTF-8 (with or
//! without BOM) or windows-1252.
//!
//! Reading is a small pipeline, so that a national extract is read at the speed of the disk:
//!
//! 1. A tokenizer thread reads the file once (hashing it on the way), splits it into records with
//!    `csv-core` (the state machine behind the `csv` crate, so quoting rules are the usual ones) and
//!    packs up to `batch_rows` records into one flat [`RawChunk`]: every field's bytes back to
//!    back, plus their end offsets. No per-record allocation.
//! 2. Each raw chunk is decoded on the rayon pool: row by row, each field is checked against its
//!    column's spec and appended to a typed Arrow column; identifier fingerprints for the
//!    uniqueness check are taken there too.
//! 3. The caller receives the chunks strictly in file order, so batches, row numbers and problem
//!    lists are the same as a single-threaded read; outputs stay byte-identical.
//!
//! At most [`IN_FLIGHT`] chunks exist beyond the one the caller holds, which bounds memory whatever
//! the size of the file.

use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use arrow_schema::Schema as ArrowSchema;
use csv_core::ReadRecordResult;
use pseudagg_core::{ColumnType, Error, Location, Problem, Result, Schema};
use rustc_hash::FxHashSet;

use crate::cell::{ColumnCheck, TextColumn};
use crate::extract::{Chunk, Encoding, Sealing, batch_of, match_columns, seal};
use crate::hashing::HashingReader;

/// Values per column and chunk whose passed check is remembered.
const MEMO_MAX: usize = 512;

/// Decoded chunks that may wait for the caller, beyond the one it holds.
const IN_FLIGHT: usize = 3;

/// Bytes asked of the file per read.
const READ_BYTES: usize = 1 << 20;

/// The longest field an extract may hold. A note of a few pages fits many times; a longer field is
/// a broken export (an unclosed quote swallowing the rest of the file) or not an extract at all.
pub const MAX_FIELD_BYTES: usize = 1 << 20;

/// Everything the decoding of a chunk needs, shared by the pool's tasks.
struct DecodeContext {
    checks: Arc<Vec<ColumnCheck>>,
    arrow: Arc<ArrowSchema>,
    encoding: Encoding,
    /// For each schema column, its field index in the file.
    mapping: Vec<usize>,
    /// For each schema column: is it read (decoded, checked and kept)? The others are only
    /// counted as fields of their record, or checked without being kept (`check_unread`).
    read: Vec<bool>,
    check_unread: bool,
    n_fields: usize,
    max_problems: usize,
    sealing: Arc<Sealing>,
}

/// One chunk of records as the tokenizer found them: unescaped field bytes back to back.
struct RawChunk {
    first_row: u64,
    data: Vec<u8>,
    /// End offset in `data` of every field of every record, in order.
    ends: Vec<usize>,
    /// For record `r`, its fields' ends are `ends[fields[r]..fields[r + 1]]`.
    fields: Vec<usize>,
    /// Where each record's first field starts in `data`.
    starts: Vec<usize>,
    /// The line each record starts on.
    lines: Vec<u64>,
}

impl RawChunk {
    fn new(first_row: u64, rows: usize, bytes: usize) -> Self {
        let mut fields = Vec::with_capacity(rows + 1);
        fields.push(0);
        Self {
            first_row,
            data: Vec::with_capacity(bytes),
            ends: Vec::new(),
            fields,
            starts: Vec::with_capacity(rows),
            lines: Vec::with_capacity(rows),
        }
    }

    /// Empties a used chunk for the next one, keeping its memory: fresh buffers for every chunk
    /// would be fresh pages from the kernel, zeroed each time.
    fn reuse(mut self, first_row: u64) -> Self {
        self.first_row = first_row;
        self.data.clear();
        self.ends.clear();
        self.fields.clear();
        self.fields.push(0);
        self.starts.clear();
        self.lines.clear();
        self
    }

    fn len(&self) -> usize {
        self.starts.len()
    }

    fn record(&self, r: usize) -> (usize, &[usize]) {
        (
            self.starts[r],
            &self.ends[self.fields[r]..self.fields[r + 1]],
        )
    }
}

/// What the tokenizer hands to the caller, in file order.
enum Pending {
    Chunk(Receiver<Chunk>),
    Failed(Error),
}

/// Splits the byte stream into records.
pub(crate) struct Tokenizer {
    path: PathBuf,
    core: csv_core::Reader,
    input: HashingReader<File>,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    eof: bool,
    /// Bytes consumed so far, for progress.
    consumed: Arc<AtomicU64>,
    /// One record's unescaped bytes, before they join a chunk.
    record: Vec<u8>,
    ends: Vec<usize>,
    /// A record longer than this is refused before it is held in memory.
    max_record_bytes: usize,
}

impl Tokenizer {
    fn new(path: &Path, input: HashingReader<File>, consumed: Arc<AtomicU64>) -> Self {
        Self {
            path: path.to_owned(),
            core: csv_core::ReaderBuilder::new()
                .delimiter(b';')
                .quote(b'"')
                .build(),
            input,
            buf: vec![0; READ_BYTES],
            pos: 0,
            len: 0,
            eof: false,
            consumed,
            record: vec![0; 64 * 1024],
            ends: vec![0; 64],
            max_record_bytes: 64 * MAX_FIELD_BYTES,
        }
    }

    fn fill(&mut self) -> Result<()> {
        if self.pos == self.len && !self.eof {
            self.pos = 0;
            self.len = loop {
                match self.input.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::io("read", &self.path, e)),
                }
            };
            self.eof = self.len == 0;
        }
        Ok(())
    }

    /// Appends the next record's fields to `data` and their end offsets (relative to `data`) to
    /// `ends`. `Ok(false)` at the end of the file.
    fn read_record(&mut self, data: &mut Vec<u8>, ends: &mut Vec<usize>) -> Result<bool> {
        let line = self.core.line();
        let (mut nout, mut nend) = (0, 0);
        loop {
            self.fill()?;
            let (res, nin, out, end) = self.core.read_record(
                &self.buf[self.pos..self.len],
                &mut self.record[nout..],
                &mut self.ends[nend..],
            );
            self.pos += nin;
            self.consumed.fetch_add(nin as u64, Ordering::Relaxed);
            nout += out;
            nend += end;
            match res {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => {
                    if nout >= self.max_record_bytes {
                        return Err(Error::Format {
                            path: self.path.clone(),
                            reason: format!(
                                "the row starting at line {line} is longer than {} MiB, more than any row of an extract; \
                                 look for an unclosed double quote in or before this row",
                                self.max_record_bytes >> 20
                            ),
                        });
                    }
                    let n = self.record.len();
                    self.record.resize(n * 2, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let n = self.ends.len();
                    self.ends.resize(n * 2, 0);
                }
                ReadRecordResult::Record => {
                    let start = data.len();
                    data.extend_from_slice(&self.record[..nout]);
                    ends.extend(self.ends[..nend].iter().map(|e| start + e));
                    return Ok(true);
                }
                ReadRecordResult::End => return Ok(false),
            }
        }
    }

    /// Fills a chunk of up to `rows` records; an empty chunk at the end of the file.
    fn chunk(
        &mut self,
        recycled: &Receiver<RawChunk>,
        first_row: u64,
        rows: usize,
        bytes: usize,
    ) -> Result<RawChunk> {
        let mut chunk = match recycled.try_recv() {
            Ok(used) => used.reuse(first_row),
            Err(_) => RawChunk::new(first_row, rows, bytes),
        };
        while chunk.len() < rows && chunk.data.len() < bytes {
            let start = chunk.data.len();
            let line = self.core.line();
            if !self.read_record(&mut chunk.data, &mut chunk.ends)? {
                break;
            }
            chunk.starts.push(start);
            chunk.lines.push(line);
            chunk.fields.push(chunk.ends.len());
        }
        Ok(chunk)
    }
}

pub(crate) struct CsvSource {
    pending: Receiver<Pending>,
    tokenizer: Option<JoinHandle<(String, u64)>>,
    consumed: Arc<AtomicU64>,
    size: u64,
    path: PathBuf,
}

/// A CSV whose header row was read: the tokenizer at the first data row, the file's size, its
/// number of fields, the column mapping, and the bytes-consumed counter.
pub(crate) type Header = (Tokenizer, u64, usize, Vec<usize>, Arc<AtomicU64>);

impl CsvSource {
    /// Reads the header row only and matches it to the schema: the tokenizer stands at the first
    /// data row. Returns it with the file's size, its number of fields and the column mapping.
    pub(crate) fn header(path: &Path, schema: &Schema, encoding: Encoding) -> Result<Header> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let size = file
            .metadata()
            .map_err(|e| Error::io("inspect", path, e))?
            .len();
        if size == 0 {
            return Err(Error::Format {
                path: path.to_owned(),
                reason: "the file is empty; an extract has a header row and at least one data row"
                    .to_owned(),
            });
        }
        let consumed = Arc::new(AtomicU64::new(0));
        let mut tokenizer = Tokenizer::new(path, HashingReader::new(file), consumed.clone());
        let (mut data, mut ends) = (Vec::new(), Vec::new());
        if !tokenizer.read_record(&mut data, &mut ends)? {
            return Err(Error::Format {
                path: path.to_owned(),
                reason: "the file holds no header row".to_owned(),
            });
        }
        let mut names = Vec::with_capacity(ends.len());
        let mut begin = 0;
        for &end in &ends {
            let raw = &data[begin..end];
            begin = end;
            names.push(
                decode(raw, encoding).map_or_else(|_| String::new(), |s| s.trim().to_owned()),
            );
        }
        let mapping = match_columns(&names, schema).map_err(|problems| Error::Input {
            file: path.to_owned(),
            schema: schema.name.clone(),
            problems,
        })?;
        Ok((tokenizer, size, names.len(), mapping, consumed))
    }

    #[allow(clippy::too_many_arguments)] // the reader's settings, each passed on as it is
    pub(crate) fn open(
        path: &Path,
        schema: &Schema,
        checks: Arc<Vec<ColumnCheck>>,
        arrow: Arc<ArrowSchema>,
        sealing: Arc<Sealing>,
        read: &[bool],
        check_unread: bool,
        encoding: Encoding,
        batch_rows: usize,
        max_problems: usize,
    ) -> Result<Self> {
        let (tokenizer, size, n_fields, mapping, consumed) = Self::header(path, schema, encoding)?;
        let context = Arc::new(DecodeContext {
            checks,
            arrow,
            encoding,
            mapping,
            read: read.to_vec(),
            check_unread,
            n_fields,
            max_problems,
            sealing,
        });
        // Chunks are cut at `batch_rows` records or at this many bytes, whichever comes first.
        let chunk_bytes = (batch_rows * 512).clamp(1 << 20, 64 << 20);
        let (sender, pending) = sync_channel(IN_FLIGHT);
        let handle = std::thread::Builder::new()
            .name("pseudagg-csv".to_owned())
            .spawn(move || tokenize(tokenizer, &context, &sender, batch_rows, chunk_bytes))
            .map_err(|e| Error::io("start a reading thread for", path, e))?;
        Ok(Self {
            pending,
            tokenizer: Some(handle),
            consumed,
            size,
            path: path.to_owned(),
        })
    }

    pub(crate) fn progress(&self) -> (u64, u64) {
        (self.consumed.load(Ordering::Relaxed), self.size)
    }

    /// The next chunk in file order; `Ok(None)` after the last one.
    pub(crate) fn next_chunk(&mut self, first_row: u64) -> Result<Option<Chunk>> {
        let Ok(next) = self.pending.recv() else {
            if first_row == 1 {
                return Err(Error::Format {
                    path: self.path.clone(),
                    reason: "the file holds a header row but no data rows".to_owned(),
                });
            }
            return Ok(None);
        };
        match next {
            Pending::Failed(e) => Err(e),
            Pending::Chunk(chunk) => chunk.recv().map(Some).map_err(|_| Error::Format {
                path: self.path.clone(),
                reason: "decoding a chunk of rows failed unexpectedly (a bug in pseudagg)"
                    .to_owned(),
            }),
        }
    }

    /// The file's hash and size; call after the last chunk.
    pub(crate) fn finish(mut self) -> (String, u64) {
        self.tokenizer
            .take()
            .expect("finish is called once")
            .join()
            .unwrap_or_else(|_| (String::new(), 0))
    }
}

/// The tokenizer thread: cuts chunks, hands each to the pool for decoding, and queues the slot its
/// result will arrive in. Ends when the file ends, on a read error, or when the caller hangs up.
fn tokenize(
    mut tokenizer: Tokenizer,
    context: &Arc<DecodeContext>,
    pending: &SyncSender<Pending>,
    batch_rows: usize,
    chunk_bytes: usize,
) -> (String, u64) {
    let mut first_row = 1u64;
    let (recycle, recycled) = std::sync::mpsc::channel();
    loop {
        let raw = match tokenizer.chunk(&recycled, first_row, batch_rows, chunk_bytes) {
            Ok(raw) if raw.len() == 0 => break,
            Ok(raw) => raw,
            Err(e) => {
                let _ = pending.send(Pending::Failed(e));
                return (String::new(), 0);
            }
        };
        first_row += raw.len() as u64;
        let (sender, receiver) = sync_channel(1);
        let context = Arc::clone(context);
        let recycle = recycle.clone();
        // The slot is queued before the work starts, so the caller waits in file order.
        if pending.send(Pending::Chunk(receiver)).is_err() {
            return (String::new(), 0);
        }
        rayon::spawn(move || {
            let _ = sender.send(decode_chunk(&context, &raw));
            let _ = recycle.send(raw);
        });
    }
    // csv-core reports the end only once the input is exhausted, so the hash covers the whole file.
    tokenizer.input.finish()
}

/// Decodes a chunk row by row into typed, checked columns.
fn decode_chunk(context: &DecodeContext, raw: &RawChunk) -> Chunk {
    let n = raw.len();
    let checks: Vec<ColumnCheck> = context.checks.iter().cloned().collect();
    let mut columns: Vec<Option<TextColumn>> = checks
        .iter()
        .zip(&context.read)
        .map(|(c, &read)| read.then(|| TextColumn::new(c.spec.ty, n)))
        .collect();
    let mut problems = Vec::new();
    let mut hidden = 0;
    let mut report = |problems: &mut Vec<Problem>, at: Location, message: Cow<'static, str>| {
        if problems.len() < context.max_problems {
            problems.push(Problem::new(at, message));
        } else {
            hidden += 1;
        }
    };
    // The chunk's bytes checked once: when the whole chunk is UTF-8 without a NUL byte, a field
    // is its slice of the chunk's text, taken at char boundaries, so no field is checked again.
    // Otherwise each field is checked on its own, so that the problem names its cell.
    let whole = match context.encoding {
        Encoding::Utf8 if !raw.data.contains(&0) => std::str::from_utf8(&raw.data).ok(),
        _ => None,
    };
    // Most text columns repeat a few values (categories, gE numbers): per column, the values of
    // the chunk that passed their check (up to `MEMO_MAX`) pass again without it. A value that
    // fails is checked in each cell, for the cell's own message.
    let mut passed: Vec<FxHashSet<&str>> = vec![FxHashSet::default(); checks.len()];
    for r in 0..n {
        let (start, ends) = raw.record(r);
        let row = raw.first_row + r as u64;
        let line = Some(raw.lines[r]);
        if ends.len() != context.n_fields {
            report(
                &mut problems,
                Location {
                    row: Some(row),
                    line,
                    ..Location::default()
                },
                Cow::Owned(format!(
                    "has {} fields, but the header has {}; a value that holds `;` must be enclosed in double quotes",
                    ends.len(),
                    context.n_fields
                )),
            );
            for column in columns.iter_mut().flatten() {
                column.append_null();
            }
            continue;
        }
        for (c, ((column, check), &fi)) in columns
            .iter_mut()
            .zip(checks.iter())
            .zip(&context.mapping)
            .enumerate()
        {
            if column.is_none() && !context.check_unread {
                continue;
            }
            let begin = if fi == 0 { start } else { ends[fi - 1] };
            let field = &raw.data[begin..ends[fi]];
            let in_whole = whole.and_then(|w| w.get(begin..ends[fi]));
            let taken = take_field(
                check,
                column.as_mut(),
                &mut passed[c],
                (field, in_whole),
                context.encoding,
            );
            if let Err(message) = taken {
                let at = Location::cell(row, line, check.spec.name.clone());
                report(&mut problems, at, message);
            }
        }
    }
    let arrays: Vec<_> = columns
        .into_iter()
        .map(|c| match c {
            Some(c) => c.finish(),
            None => Arc::new(arrow_array::NullArray::new(n)) as arrow_array::ArrayRef,
        })
        .collect();
    let batch = batch_of(&context.arrow, arrays, !problems.is_empty());
    seal(
        &context.sealing,
        batch,
        raw.first_row,
        (problems, hidden),
        Some(raw.data.len() as u64),
    )
}

/// Decodes one field, checks it and appends it to `column` (`None`: a column only checked). The
/// field's text is `in_whole` when the chunk is valid UTF-8 as a whole. A text value in `passed`
/// passed its check in an earlier cell of the chunk and is appended unchecked; a value that
/// passes joins it (up to [`MEMO_MAX`]).
fn take_field<'a>(
    check: &ColumnCheck,
    column: Option<&mut TextColumn>,
    passed: &mut FxHashSet<&'a str>,
    (field, in_whole): (&'a [u8], Option<&'a str>),
    encoding: Encoding,
) -> std::result::Result<(), Cow<'static, str>> {
    let text = match in_whole {
        Some(text) if field.len() <= MAX_FIELD_BYTES => {
            if check.spec.ty == ColumnType::Str && passed.contains(text) {
                if let Some(column) = column {
                    column.append_checked_str(text);
                }
                return Ok(());
            }
            Ok(Cow::Borrowed(text))
        }
        _ => decode(field, encoding),
    };
    let memo = match &text {
        Ok(Cow::Borrowed(t))
            if check.spec.ty == ColumnType::Str && !t.is_empty() && passed.len() < MEMO_MAX =>
        {
            Some(*t)
        }
        _ => None,
    };
    let result = match (text, column) {
        (Ok(text), Some(column)) => column.append(check, Some(&text)).map_err(Cow::Owned),
        (Ok(text), None) => check.check_cell(Some(&text)).map_err(Cow::Owned),
        (Err(message), column) => {
            if let Some(column) = column {
                column.append_null();
            }
            Err(message)
        }
    };
    if result.is_ok()
        && let Some(t) = memo
    {
        passed.insert(t);
    }
    result
}

/// Decodes a field; an empty field is the empty string (the caller treats it as null).
fn decode(raw: &[u8], encoding: Encoding) -> std::result::Result<Cow<'_, str>, Cow<'static, str>> {
    if raw.len() > MAX_FIELD_BYTES {
        return Err(Cow::Owned(format!(
            "is {} bytes long, more than the {MAX_FIELD_BYTES} a field may hold; look for an unclosed double quote in or before this row",
            raw.len()
        )));
    }
    if raw.contains(&0) {
        return Err(Cow::Borrowed(
            "holds a NUL byte: binary data, not text; is this a CSV export?",
        ));
    }
    match encoding {
        Encoding::Utf8 => std::str::from_utf8(raw).map(Cow::Borrowed).map_err(|_| {
            Cow::Borrowed(
                "is not valid UTF-8; if the file is encoded as windows-1252, run with --encoding windows-1252",
            )
        }),
        Encoding::Windows1252 => Ok(encoding_rs::WINDOWS_1252.decode_without_bom_handling(raw).0),
    }
}
