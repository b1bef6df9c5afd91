//! The capture-file edge: stream raw frames out of pcap / pcapng files. Port of the reading side of
//! pcapio.py (`read_frames`), with the same frames, offsets, timestamps and error texts.
//!
//! Formats:
//! - pcap: https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcap/ (plus the "modified pcap"
//!   magic 0xa1b2cd34 from libpcap's sf-pcap.c, whose records carry 8 extra bytes).
//! - pcapng: https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcapng/
//!
//! Every fault is a `CaptureError` whose offset points at the start of the structure at fault (the
//! file header, the record or the block), so a user can look at it with a hex dump; a fault in a
//! packet record or packet block also names the frame number that record would have had.
//!
//! Captured length against snaplen, as libpcap's sf-pcap.c (`pcap_next_packet`) decides it: a pcap
//! record whose captured length exceeds the file's snaplen but not libpcap's largest snaplen for
//! the link type (`max_snaplen_for_dlt`: 262144, more for D-Bus, EBHSCR, USBPcap) is kept, cut to
//! the snaplen, and reported as a warning; beyond that largest snaplen the record header is corrupt
//! and reading stops with a `CaptureError`.
//!
//! Streaming: a record or packet block is read whole into one reused buffer and handed out as a
//! slice (no allocation per frame). The buffer grows only as bytes arrive, so a corrupt 32-bit
//! length read from a pipe cannot make it allocate gigabytes; on a regular file such a length is
//! refused before reading (`check_fits`). A regular file opened by path is read ahead by a thread
//! into a few recycled chunks (`ahead.rs`), so that the kernel's copy overlaps the parsing.
//!
//! `open`/`new` read the magic number and the pcap file header (their faults come from there); a
//! pcapng's first Section Header Block is read by the first `next_frame`, as Python's loop reads it.
//! After an error or the end, `next_frame` returns Ok(None), as a finished Python generator.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};

mod ahead;
pub(crate) mod ticks;

/// A file-level fault: the file cannot be read, or is malformed at `offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureError {
    pub path: String,
    pub offset: u64,
    /// The 1-based number the frame would have had, when the fault is in a packet record or block.
    pub frame: Option<u64>,
    pub message: String,
}

impl fmt::Display for CaptureError {
    /// `{path}: byte offset {offset}: {message}` or `{path}: frame {frame} at byte offset {offset}:
    /// {message}`, as Python's str(CaptureError).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.path,
            where_(self.offset, self.frame),
            self.message
        )
    }
}

impl std::error::Error for CaptureError {}

/// "frame 17 at byte offset 1234", or "byte offset 24" where no frame is involved: the one spelling
/// of a place in a file, for errors and warnings alike (pcapio.where).
pub fn where_(offset: u64, frame: Option<u64>) -> String {
    match frame {
        None => format!("byte offset {offset}"),
        Some(frame) => format!("frame {frame} at byte offset {offset}"),
    }
}

/// One captured frame, undecoded: what every edge hands to `decode`. `data` borrows the reader's
/// buffer until the next call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Frame<'a> {
    /// 1-based frame number in the file (counts every packet record, TCP or not).
    pub frame: u64,
    /// Seconds since the epoch: the f64 nearest to the exact tick count over ticks per second.
    pub ts: f64,
    /// DLT/LINKTYPE number of this frame's interface.
    pub linktype: u32,
    pub data: &'a [u8],
    /// Original length on the wire.
    pub wirelen: u32,
    /// Byte offset in the file of this frame's record (for error messages).
    pub offset: u64,
}

/// libpcap's largest snaplen (pcap-int.h MAXIMUM_SNAPLEN).
pub const MAXIMUM_SNAPLEN: u32 = 262144;
const INT_MAX: u32 = 0x7FFF_FFFF;

/// libpcap's largest captured length for a link type (pcap-common.c `max_snaplen_for_dlt`): a pcap
/// record longer than this for its link type has a corrupt header (libpcap refuses it), and
/// reading it blindly could ask for 4 GiB.
pub fn max_snaplen(linktype: u32) -> u32 {
    match linktype {
        231 => 128 * 1024 * 1024, // D-Bus: a message is at most 128 MiB
        249 => 1024 * 1024,       // USBPcap
        279 => 8 * 1024 * 1024,   // EBHSCR
        _ => MAXIMUM_SNAPLEN,
    }
}

/// Block lengths above this are checked against the file size before reading them, so that a
/// corrupt 32-bit length cannot make us allocate gigabytes.
const BIG_BLOCK: u32 = 1 << 20;
/// The buffer's starting size and the most it grows by per read while a block is still arriving.
const CHUNK: usize = 1 << 20;
/// The first read: enough for a small capture whole.
const FIRST_READ: usize = 64 << 10;

const SHB_TYPE: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a]; // a palindrome: readable before the byte order is known
const SHB: u32 = 0x0A0D_0D0A;
// pcapng block types
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
// pcapng IDB option codes
const OPT_ENDOFOPT: u16 = 0;
const IF_TSRESOL: u16 = 9;
const IF_TSOFFSET: u16 = 14;

#[inline]
fn rd_u32(b: &[u8], i: usize, be: bool) -> u32 {
    match b.get(i..i + 4) {
        Some(s) => {
            let a = [s[0], s[1], s[2], s[3]];
            if be {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }
        }
        None => 0,
    }
}

/// The four bytes at `i` (zeros where the slice is shorter: callers have checked its length).
#[inline]
fn bytes4(b: &[u8], i: usize) -> [u8; 4] {
    match b.get(i..i + 4) {
        Some(s) => [s[0], s[1], s[2], s[3]],
        None => [0; 4],
    }
}

#[inline]
fn rd_u16(b: &[u8], i: usize, be: bool) -> u16 {
    match b.get(i..i + 2) {
        Some(s) => {
            let a = [s[0], s[1]];
            if be {
                u16::from_be_bytes(a)
            } else {
                u16::from_le_bytes(a)
            }
        }
        None => 0,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The classic pcap layout of one file.
#[derive(Clone, Copy, Debug)]
struct Pcap {
    be: bool,
    divisor: u64,
    /// Record header length: 16, or 24 for modified pcap.
    hlen: usize,
    linktype: u32,
    /// The snaplen as libpcap takes it (pcap_adjust_snapshot).
    snap: u32,
    /// libpcap's largest snaplen for the link type.
    limit: u32,
    /// min(snap, limit): one comparison per record in the common case.
    guard: u32,
}

/// What a pcapng packet block needs from its Interface Description Block.
#[derive(Clone, Copy, Debug)]
struct Interface {
    linktype: u32,
    snaplen: u32, // 0 = unlimited
    scale: ticks::Scale,
}

#[derive(Debug)]
enum Format {
    Pcap(Pcap),
    Pcapng { be: bool, ifaces: Vec<Interface> },
}

/// A streaming pcap / pcapng reader: frames one at a time out of one reused buffer.
pub struct Reader<R: Read> {
    source: Source<R>,
    path: String,
    /// The opened file, for a fresh size at each `check_fits` (a file still being written grows).
    stat: Option<File>,
    /// The size given by the caller of `new`, when there is no file to ask.
    file_len: Option<u64>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// File offset of buf[start]: the next record or block (Python's `pos`).
    pos: u64,
    frame: u64,
    done: bool,
    format: Format,
    warnings: Vec<String>,
}

impl<R: Read> fmt::Debug for Reader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("path", &self.path)
            .field("pos", &self.pos)
            .finish()
    }
}

/// The strerror text of an OS error, as Python's `err.strerror` (Rust appends " (os error N)").
fn strerror(err: &io::Error) -> String {
    let text = err.to_string();
    match (err.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(at)) => text.get(..at).unwrap_or(&text).to_string(),
        _ => text,
    }
}

impl Reader<File> {
    /// Open a capture by path and read its header(s); the same errors as Python for a missing file,
    /// a directory, an empty file, a file that is not a capture. A pipe (`/dev/stdin`) works too.
    pub fn open(path: &str) -> Result<Self, CaptureError> {
        let fail = |message: String| CaptureError {
            path: path.to_string(),
            offset: 0,
            frame: None,
            message,
        };
        let file = File::open(path).map_err(|e| fail(strerror(&e)))?;
        // Python's open() refuses a directory (IsADirectoryError); Rust's opens it.
        let meta = file.metadata().map_err(|e| fail(strerror(&e)))?;
        if meta.is_dir() {
            return Err(fail(strerror(&io::Error::from_raw_os_error(21))));
        }
        if !meta.is_file() {
            // A pipe or a device: read in the caller's thread (a reader thread could block forever).
            return Self::start(Source::Plain(file), path, None, None);
        }
        let stat = file.try_clone().ok();
        let source = match ahead::Ahead::spawn(file) {
            Ok(a) => Source::Ahead(a),
            Err(file) => Source::Plain(file),
        };
        Self::start(source, path, None, stat)
    }
}

/// Where the bytes come from: the caller's reader, or (a regular file opened by path) a thread
/// that reads ahead into recycled chunks, so that the kernel's copy overlaps the parsing.
enum Source<R> {
    Plain(R),
    Ahead(ahead::Ahead),
}

impl<R: Read> Reader<R> {
    /// A reader over any byte stream (stdin, a pipe): `is_regular_file_len` is the size of the
    /// regular file behind it, or None when there is none (then block lengths cannot be checked
    /// before reading, and memory follows the bytes that arrive).
    pub fn new(
        inner: R,
        path: &str,
        is_regular_file_len: Option<u64>,
    ) -> Result<Self, CaptureError> {
        Self::start(Source::Plain(inner), path, is_regular_file_len, None)
    }

    fn start(
        source: Source<R>,
        path: &str,
        file_len: Option<u64>,
        stat: Option<File>,
    ) -> Result<Self, CaptureError> {
        let mut r = Reader {
            source,
            path: path.to_string(),
            stat,
            file_len,
            buf: Vec::new(),
            start: 0,
            end: 0,
            eof: false,
            pos: 0,
            frame: 0,
            done: false,
            format: Format::Pcapng {
                be: false,
                ifaces: Vec::new(),
            },
            warnings: Vec::new(),
        };
        let have = r.fill(4)?;
        if have == 0 {
            return Err(r.error(0, None, "empty file".into()));
        }
        if have < 4 {
            let msg = format!("truncated magic number ({have} of 4 bytes)");
            return Err(r.error(0, None, msg));
        }
        let magic = bytes4(r.avail(4), 0);
        // first four bytes of the file -> (byte order, ticks per second, extra bytes per record)
        let pcap = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => Some((false, 1_000_000, 0)),
            [0xa1, 0xb2, 0xc3, 0xd4] => Some((true, 1_000_000, 0)),
            [0x4d, 0x3c, 0xb2, 0xa1] => Some((false, 1_000_000_000, 0)),
            [0xa1, 0xb2, 0x3c, 0x4d] => Some((true, 1_000_000_000, 0)),
            // "modified pcap" (Alexey Kuznetsov's patches): ifindex(4) protocol(2) pkt_type(1) pad(1)
            [0x34, 0xcd, 0xb2, 0xa1] => Some((false, 1_000_000, 8)),
            [0xa1, 0xb2, 0xcd, 0x34] => Some((true, 1_000_000, 8)),
            _ => None,
        };
        if let Some((be, divisor, extra)) = pcap {
            r.pcap_header(be, divisor, extra)?;
        } else if magic != SHB_TYPE {
            let msg = format!("not a pcap or pcapng file (magic 0x{})", hex(&magic));
            return Err(r.error(0, None, msg));
        }
        // pcapng: the first Section Header Block is read by the first next_frame, as Python's loop
        // reads it; its faults surface there.
        Ok(r)
    }

    fn pcap_header(&mut self, be: bool, divisor: u64, extra: usize) -> Result<(), CaptureError> {
        let have = self.fill(24)?;
        if have < 24 {
            let msg = format!("truncated global header ({have} of 24 bytes)");
            return Err(self.error(0, None, msg));
        }
        let h = self.avail(24);
        // version, thiszone and sigfigs do not affect reading; the upper 16 bits of the link type
        // carry FCS information.
        let snaplen = rd_u32(h, 16, be);
        let linktype = rd_u32(h, 20, be) & 0xFFFF;
        let limit = max_snaplen(linktype);
        // The snaplen as libpcap takes it (pcap_adjust_snapshot): 0 or above INT_MAX means "the
        // largest for the link type"; a modified-pcap Ethernet capture may hold 14 bytes more
        // (sf-pcap.c: a faked Ethernet header added to a cooked capture).
        let mut snap = if snaplen > 0 && snaplen <= INT_MAX {
            snaplen
        } else {
            limit
        };
        if extra != 0 && linktype == 1 {
            snap = snap.saturating_add(14).min(INT_MAX);
        }
        self.consume(24);
        self.format = Format::Pcap(Pcap {
            be,
            divisor,
            hlen: 16 + extra,
            linktype,
            snap,
            limit,
            guard: snap.min(limit),
        });
        Ok(())
    }

    /// The next frame; Ok(None) at the end of the capture, and after an error (as a Python
    /// generator that raised is finished).
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        if self.done {
            return Ok(None);
        }
        // Finished unless a frame comes out (`emit` clears it): at the end, and after an error.
        self.done = true;
        match self.format {
            Format::Pcap(p) => self.pcap_record(p),
            Format::Pcapng { .. } => self.pcapng_block(),
        }
    }

    /// The frame just read: its bytes are buf[data], already consumed.
    #[inline]
    fn emit(
        &mut self,
        data: std::ops::Range<usize>,
        ts: f64,
        linktype: u32,
        wirelen: u32,
        offset: u64,
    ) -> Result<Option<Frame<'_>>, CaptureError> {
        self.done = false;
        Ok(Some(Frame {
            frame: self.frame,
            ts,
            linktype,
            data: self.buf.get(data).unwrap_or(&[]),
            wirelen,
            offset,
        }))
    }

    /// The warning lines for frames kept despite a fault (a pcap record longer than the file's
    /// snaplen, kept cut to it as libpcap does), in order, since the last call. Python passes the
    /// same lines to `on_warning`; call this after each frame so they keep their place.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Bytes consumed so far: the offset of the next record or block (for progress).
    pub fn offset(&self) -> u64 {
        self.pos
    }

    // --- pcap -----------------------------------------------------------------------------------

    /// One pcap record, or None at the end.
    fn pcap_record(&mut self, p: Pcap) -> Result<Option<Frame<'_>>, CaptureError> {
        let hlen = p.hlen;
        let pos = self.pos;
        let have = self.fill(hlen)?;
        if have < hlen {
            if have == 0 {
                return Ok(None);
            }
            let msg = format!("truncated record header ({have} of {hlen} bytes)");
            return Err(self.error(pos, Some(self.frame + 1), msg));
        }
        let h = self.avail(hlen);
        let sec = rd_u32(h, 0, p.be);
        let frac = rd_u32(h, 4, p.be);
        let caplen = rd_u32(h, 8, p.be);
        let wirelen = rd_u32(h, 12, p.be);
        let mut keep = caplen as usize;
        if caplen > p.guard {
            keep = self.oversized(p, pos, caplen)?;
        }
        let need = hlen + caplen as usize;
        let have = self.fill(need)?;
        if have < need {
            let msg = format!("truncated packet data ({} of {caplen} bytes)", have - hlen);
            return Err(self.error(pos, Some(self.frame + 1), msg));
        }
        if keep != caplen as usize {
            // Only once the whole record is there, as Python warns after reading it.
            let msg = format!(
                "{}: {}: captured length {caplen} exceeds the file's snaplen {}; frame kept, cut to {} bytes (as libpcap does)",
                self.path,
                where_(pos, Some(self.frame + 1)),
                p.snap,
                p.snap
            );
            self.warnings.push(msg);
        }
        self.frame += 1;
        let data = self.start + hlen..self.start + hlen + keep;
        self.consume(need);
        // Integer ticks divided once, correctly rounded, as Python's int / int: the float is the
        // nearest one to the exact timestamp, for nanoseconds too.
        let ts = ticks::pcap_seconds(sec, frac, p.divisor);
        self.emit(data, ts, p.linktype, wirelen, pos)
    }

    /// A pcap record longer than the snaplen or libpcap's limit: what sf-pcap.c does with it.
    ///
    /// Beyond libpcap's largest snaplen for the link type, the header is corrupt: an error. Above
    /// the file's snaplen only, libpcap keeps the first snaplen bytes and skips the rest (old
    /// Solaris BUFMOD wrote such files); so do we, with a warning, because the frame is kept but cut.
    fn oversized(&mut self, p: Pcap, pos: u64, caplen: u32) -> Result<usize, CaptureError> {
        if caplen > p.limit {
            let msg = format!(
                "impossible captured length {caplen} (more than {}, libpcap's largest snaplen for link type {})",
                p.limit, p.linktype
            );
            return Err(self.error(pos, Some(self.frame + 1), msg));
        }
        // caplen <= limit and caplen > min(snap, limit), so snap < caplen: the record is cut.
        Ok(p.snap as usize)
    }

    // --- pcapng ---------------------------------------------------------------------------------

    fn pcapng_block(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        loop {
            let pos = self.pos;
            let have = self.fill(8)?;
            if have < 8 {
                if have == 0 {
                    return Ok(None);
                }
                let msg = format!("truncated block header ({have} of 8 bytes)");
                return Err(self.error(pos, None, msg));
            }
            let be = match self.format {
                Format::Pcapng { be, .. } => be,
                Format::Pcap(_) => false,
            };
            let h = self.avail(8);
            // The SHB type is a palindrome, so any section's byte order reads it right.
            let btype = rd_u32(h, 0, be);
            let blen = rd_u32(h, 4, be);
            let lenbytes = bytes4(h, 4);

            if btype == SHB {
                // A new section: its own byte order, its own interfaces (pcapng §4.1).
                self.section_header(pos, lenbytes)?;
                continue;
            }

            let is_frame = matches!(btype, PB | SPB | EPB);
            let frame_no = if is_frame { Some(self.frame + 1) } else { None };
            if blen < 12 || blen & 3 != 0 {
                let msg = format!(
                    "invalid block total length {blen} (must be a multiple of 4 and at least 12)"
                );
                return Err(self.error(pos, frame_no, msg));
            }
            if blen > BIG_BLOCK {
                self.check_fits(pos, blen, frame_no)?;
            }
            let total = blen as usize;

            if !matches!(btype, IDB | PB | SPB | EPB) {
                // Name resolution, interface statistics, decryption secrets, custom, unknown:
                // nothing for a handshake inspector; skip by length but still check the trailer.
                self.skip_block(pos, blen, lenbytes, be)?;
                continue;
            }

            let have = self.fill(total)?;
            if have < total {
                let msg = format!("truncated block ({have} of {blen} bytes)");
                return Err(self.error(pos, frame_no, msg));
            }
            let block = self.avail(total);
            if bytes4(block, total - 4) != lenbytes {
                // Same byte order, so equal bytes <=> equal lengths.
                let copy = rd_u32(block, total - 4, be);
                let msg = format!("trailing block length {copy} does not match {blen}");
                return Err(self.error(pos, frame_no, msg));
            }

            if btype == EPB || btype == PB {
                if blen < 32 {
                    let msg = format!("packet block too short ({blen} bytes)");
                    return Err(self.error(pos, Some(self.frame + 1), msg));
                }
                let (iid, hi, lo, caplen, wirelen) = if btype == EPB {
                    (
                        rd_u32(block, 8, be),
                        rd_u32(block, 12, be),
                        rd_u32(block, 16, be),
                        rd_u32(block, 20, be),
                        rd_u32(block, 24, be),
                    )
                } else {
                    // Obsolete Packet Block: 16-bit interface id and drops count.
                    (
                        u32::from(rd_u16(block, 8, be)),
                        rd_u32(block, 12, be),
                        rd_u32(block, 16, be),
                        rd_u32(block, 20, be),
                        rd_u32(block, 24, be),
                    )
                };
                let iface = match &self.format {
                    Format::Pcapng { ifaces, .. } => match ifaces.get(iid as usize) {
                        Some(i) => *i,
                        None => {
                            let msg = format!(
                                "packet names interface {iid}, but the section declares {}",
                                ifaces.len()
                            );
                            return Err(self.error(pos, Some(self.frame + 1), msg));
                        }
                    },
                    Format::Pcap(_) => return Ok(None),
                };
                if caplen > blen - 32 {
                    let msg = format!(
                        "captured length {caplen} runs past the block ({} bytes of packet data)",
                        blen - 32
                    );
                    return Err(self.error(pos, Some(self.frame + 1), msg));
                }
                self.frame += 1;
                let ts = ticks::seconds((u64::from(hi) << 32) | u64::from(lo), iface.scale);
                let data = self.start + 28..self.start + 28 + caplen as usize;
                self.consume(total);
                return self.emit(data, ts, iface.linktype, wirelen, pos);
            } else if btype == SPB {
                if blen < 16 {
                    let msg = format!("simple packet block too short ({blen} bytes)");
                    return Err(self.error(pos, Some(self.frame + 1), msg));
                }
                let first = match &self.format {
                    Format::Pcapng { ifaces, .. } => ifaces.first().copied(),
                    Format::Pcap(_) => None,
                };
                // pcapng §4.4: SPBs belong to the first interface.
                let Some(iface) = first else {
                    let msg = "simple packet block before any interface".to_string();
                    return Err(self.error(pos, Some(self.frame + 1), msg));
                };
                let wirelen = rd_u32(block, 8, be);
                // The SPB has no captured length: it is the wire length cut to the snaplen.
                let caplen = if iface.snaplen != 0 {
                    wirelen.min(iface.snaplen)
                } else {
                    wirelen
                };
                if caplen > blen - 16 {
                    let msg = format!(
                        "captured length {caplen} runs past the block ({} bytes of packet data)",
                        blen - 16
                    );
                    return Err(self.error(pos, Some(self.frame + 1), msg));
                }
                self.frame += 1;
                let data = self.start + 12..self.start + 12 + caplen as usize;
                self.consume(total);
                // No timestamp in an SPB: 0.0 says "unknown" rather than inventing one.
                return self.emit(data, 0.0, iface.linktype, wirelen, pos);
            } else {
                // IDB: its body without header and trailer.
                let iface = read_idb(block.get(8..total - 4).unwrap_or(&[]), be)
                    .map_err(|msg| self.error(pos, None, msg))?;
                if let Format::Pcapng { ifaces, .. } = &mut self.format {
                    ifaces.push(iface);
                }
                self.consume(total);
            }
        }
    }

    /// A Section Header Block at `pos` whose length bytes are `lenbytes`: its byte order replaces
    /// the section's, its interfaces start empty.
    fn section_header(&mut self, pos: u64, lenbytes: [u8; 4]) -> Result<(), CaptureError> {
        let have = self.fill(12)?;
        if have < 12 {
            let msg = format!("truncated section header ({have} of 28 bytes)");
            return Err(self.error(pos, None, msg));
        }
        let bom = self.avail(12).get(8..12).unwrap_or(&[]);
        let be = match bom {
            [0x4d, 0x3c, 0x2b, 0x1a] => false,
            [0x1a, 0x2b, 0x3c, 0x4d] => true,
            _ => {
                let msg = format!("bad byte-order magic 0x{} in section header", hex(bom));
                return Err(self.error(pos, None, msg));
            }
        };
        let blen = if be {
            u32::from_be_bytes(lenbytes)
        } else {
            u32::from_le_bytes(lenbytes)
        };
        if blen < 28 || blen % 4 != 0 {
            let msg = format!(
                "invalid section header length {blen} (must be a multiple of 4 and at least 28)"
            );
            return Err(self.error(pos, None, msg));
        }
        if blen > BIG_BLOCK {
            self.check_fits(pos, blen, None)?;
        }
        let total = blen as usize;
        let have = self.fill(total)?;
        if have < total {
            let msg = format!("truncated block ({have} of {blen} bytes)");
            return Err(self.error(pos, None, msg));
        }
        let block = self.avail(total);
        if bytes4(block, total - 4) != lenbytes {
            let copy = rd_u32(block, total - 4, be);
            let msg = format!("trailing block length {copy} does not match {blen}");
            return Err(self.error(pos, None, msg));
        }
        let major = rd_u16(block, 12, be);
        let minor = rd_u16(block, 14, be);
        if major != 1 {
            // A different major version means a layout we cannot know (pcapng §4.1).
            let msg = format!("unsupported pcapng version {major}.{minor}");
            return Err(self.error(pos, None, msg));
        }
        self.format = Format::Pcapng {
            be,
            ifaces: Vec::new(),
        };
        self.consume(total);
        Ok(())
    }

    /// Read past a block that holds nothing for us, in bounded chunks (works on pipes; memory
    /// stays flat), then check its trailing length.
    fn skip_block(
        &mut self,
        pos: u64,
        blen: u32,
        lenbytes: [u8; 4],
        be: bool,
    ) -> Result<(), CaptureError> {
        let mut left = blen as usize - 4; // header and body; the trailer is read below
        while left > 0 {
            let have = self.fill(left.min(CHUNK))?;
            if have == 0 {
                let done = blen as usize - 4 - left;
                let msg = format!("truncated block ({done} of {blen} bytes)");
                return Err(self.error(pos, None, msg));
            }
            let step = have.min(left);
            self.consume(step);
            left -= step;
        }
        let have = self.fill(4)?;
        let trailer = self.avail(have.min(4));
        if trailer != lenbytes {
            let msg = if trailer.len() != 4 {
                format!(
                    "truncated block ({} of {blen} bytes)",
                    blen as usize - 4 + trailer.len()
                )
            } else {
                let copy = rd_u32(trailer, 0, be);
                format!("trailing block length {copy} does not match {blen}")
            };
            return Err(self.error(pos, None, msg));
        }
        self.consume(4);
        Ok(())
    }

    /// Refuse a block longer than what is left of a regular file, before allocating for it.
    fn check_fits(&mut self, pos: u64, blen: u32, frame: Option<u64>) -> Result<(), CaptureError> {
        // Fresh: a file still being written may have grown.
        let size = match &self.stat {
            Some(f) => match f.metadata() {
                Ok(m) if m.is_file() => Some(m.len()),
                _ => None,
            },
            None => self.file_len,
        };
        if let Some(size) = size {
            if pos + u64::from(blen) > size {
                let msg = format!(
                    "truncated block ({} of {blen} bytes)",
                    size.saturating_sub(pos)
                );
                return Err(self.error(pos, frame, msg));
            }
        }
        Ok(())
    }

    // --- the buffer -----------------------------------------------------------------------------

    fn error(&self, offset: u64, frame: Option<u64>, message: String) -> CaptureError {
        CaptureError {
            path: self.path.clone(),
            offset,
            frame,
            message,
        }
    }

    /// The first `n` buffered bytes (fewer if fewer are buffered).
    #[inline]
    fn avail(&self, n: usize) -> &[u8] {
        let end = self.end.min(self.start.saturating_add(n));
        self.buf.get(self.start..end).unwrap_or(&[])
    }

    #[inline]
    fn consume(&mut self, n: usize) {
        let n = n.min(self.end - self.start);
        self.start += n;
        self.pos += n as u64;
    }

    /// Make at least `need` bytes available from buf[start], reading as needed; returns how many
    /// are available (fewer only at the end of the stream). The buffer grows by at most CHUNK (or
    /// its own size) per read and only while bytes keep arriving: memory follows the bytes that
    /// exist, not a length field.
    #[inline]
    fn fill(&mut self, need: usize) -> Result<usize, CaptureError> {
        let have = self.end - self.start;
        if have >= need || self.eof {
            return Ok(have);
        }
        self.fill_slow(need)
    }

    #[cold]
    fn fill_slow(&mut self, need: usize) -> Result<usize, CaptureError> {
        if let Source::Ahead(a) = &mut self.source {
            let got = a.fill(&mut self.buf, &mut self.start, &mut self.end, need);
            return match got {
                Ok(eof) => {
                    self.eof = eof;
                    Ok(self.end - self.start)
                }
                Err(e) => Err(self.error(self.pos, None, strerror(&e))),
            };
        }
        if self.buf.len() < CHUNK {
            // Start small (a tiny capture costs little), reach CHUNK-sized reads after a few refills.
            let grown = (self.buf.len() * 4).clamp(FIRST_READ, CHUNK);
            self.buf.resize(grown, 0);
        }
        if self.buf.len() - self.start < need {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end - self.start < need {
            if self.end == self.buf.len() {
                let missing = need - (self.end - self.start);
                let grow = missing.min(CHUNK.max(self.buf.len()));
                self.buf.resize(self.buf.len() + grow, 0);
            }
            let Source::Plain(inner) = &mut self.source else {
                break;
            };
            let got = match inner.read(self.buf.get_mut(self.end..).unwrap_or(&mut [])) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.error(self.pos, None, strerror(&e))),
            };
            if got == 0 {
                self.eof = true;
                break;
            }
            self.end += got;
        }
        Ok(self.end - self.start)
    }
}

/// Parse an Interface Description Block body (without header and trailer).
fn read_idb(body: &[u8], be: bool) -> Result<Interface, String> {
    if body.len() < 8 {
        return Err(format!(
            "interface description block too short ({} bytes)",
            body.len() + 12
        ));
    }
    let linktype = u32::from(rd_u16(body, 0, be));
    let snaplen = rd_u32(body, 4, be);
    let mut resol: u8 = 6; // default if_tsresol: microseconds
    let mut offset_seconds: i64 = 0;
    let mut i = 8;
    let end = body.len();
    while i + 4 <= end {
        let code = rd_u16(body, i, be);
        let olen = usize::from(rd_u16(body, i + 2, be));
        if code == OPT_ENDOFOPT {
            break;
        }
        let Some(value) = body.get(i + 4..i + 4 + olen) else {
            return Err(format!("interface option {code} runs past the block"));
        };
        if code == IF_TSRESOL {
            if olen != 1 {
                return Err(format!("if_tsresol option of {olen} bytes (expected 1)"));
            }
            // High bit set: a negative power of 2; otherwise a negative power of 10.
            resol = value.first().copied().unwrap_or(6);
        } else if code == IF_TSOFFSET {
            if olen != 8 {
                return Err(format!("if_tsoffset option of {olen} bytes (expected 8)"));
            }
            let mut v = [0u8; 8];
            v.copy_from_slice(value);
            offset_seconds = if be {
                i64::from_be_bytes(v)
            } else {
                i64::from_le_bytes(v)
            };
        }
        i += 4 + olen + (4 - olen % 4) % 4; // values are padded to 32 bits
    }
    Ok(Interface {
        linktype,
        snaplen,
        scale: ticks::Scale::new(resol, offset_seconds),
    })
}

#[cfg(test)]
mod tests;
