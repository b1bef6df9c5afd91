//! The only `unsafe` of the live reader: the socket system calls (dup, recvmmsg, poll,
//! getsockopt). Each block hands the kernel pointers into buffers this module owns and sizes;
//! what comes back is returned as lengths and byte slices, and everything read out of those bytes
//! (control messages, the sender's address) is parsed by safe code in `live.rs`.
//!
//! Linux only (AF_PACKET); `live.rs` is compiled on Linux only.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// SOL_PACKET / PACKET_STATISTICS (include/uapi/linux/if_packet.h).
const SOL_PACKET: libc::c_int = 263;
const PACKET_STATISTICS: libc::c_int = 6;
/// Room for the control messages a packet socket sends with each packet: SCM_TIMESTAMPNS (16 bytes
/// of data) and PACKET_AUXDATA (20), each with its 16-byte header, aligned: 32 + 40 = 72.
pub const CONTROL_SPACE: usize = 128;
/// struct sockaddr_ll is 20 bytes; room for it.
pub const NAME_SPACE: usize = 32;

/// Our own descriptor for the capture socket the Python edge set up (filter attached, bound), so
/// the reader thread's lifetime does not depend on the Python object's.
pub fn dup(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes an int argument and touches no memory; a bad `fd` makes the
    // call fail with EBADF, which is checked. The new descriptor is ours alone, so OwnedFd may
    // close it.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a freshly created, open descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// One received packet: its bytes, its control messages, the sender's address (struct
/// sockaddr_ll).
pub struct Slot<'a> {
    pub data: &'a [u8],
    pub control: &'a [u8],
    pub name: &'a [u8],
}

/// The buffers one `recvmmsg` fills: `n` slots of `snaplen` bytes, each with its control and
/// address space. Allocated once; the kernel writes into them in place.
pub struct Batch {
    snaplen: usize,
    data: Vec<u8>,
    control: Vec<u8>,
    names: Vec<u8>,
    /// per slot, after a receive: (bytes received, control bytes, address bytes)
    lens: Vec<(usize, usize, usize)>,
}

impl Batch {
    pub fn new(n: usize, snaplen: usize) -> Batch {
        Batch {
            snaplen,
            data: vec![0; n * snaplen],
            control: vec![0; n * CONTROL_SPACE],
            names: vec![0; n * NAME_SPACE],
            lens: vec![(0, 0, 0); n],
        }
    }

    /// Slot `i` of the last receive. The packet bytes are those the kernel copied (at most
    /// snaplen).
    pub fn slot(&self, i: usize) -> Option<Slot<'_>> {
        let &(len, clen, nlen) = self.lens.get(i)?;
        let data = self.data.get(i * self.snaplen..)?;
        let control = self.control.get(i * CONTROL_SPACE..)?;
        let name = self.names.get(i * NAME_SPACE..)?;
        Some(Slot {
            data: data.get(..len.min(self.snaplen))?,
            control: control.get(..clen.min(CONTROL_SPACE))?,
            name: name.get(..nlen.min(NAME_SPACE))?,
        })
    }

    /// Receive up to the batch's size of packets without waiting; Ok(0) when none is queued.
    pub fn recv(&mut self, fd: &OwnedFd) -> io::Result<usize> {
        let n = self.lens.len();
        let mut iov: Vec<libc::iovec> = Vec::with_capacity(n);
        for chunk in self.data.chunks_exact_mut(self.snaplen).take(n) {
            iov.push(libc::iovec {
                iov_base: chunk.as_mut_ptr().cast(),
                iov_len: chunk.len(),
            });
        }
        let mut hdrs: Vec<libc::mmsghdr> = Vec::with_capacity(n);
        let controls = self.control.chunks_exact_mut(CONTROL_SPACE);
        let names = self.names.chunks_exact_mut(NAME_SPACE);
        for ((v, c), a) in iov.iter_mut().zip(controls).zip(names) {
            // SAFETY: mmsghdr is a plain C struct for which all-zero bytes are a valid value
            // (null pointers, zero lengths); the fields that matter are set right below.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = a.as_mut_ptr().cast();
            h.msg_hdr.msg_namelen = a.len() as libc::socklen_t;
            h.msg_hdr.msg_iov = v;
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = c.as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = c.len() as _;
            hdrs.push(h);
        }
        // SAFETY: every pointer in `hdrs` points into `self.data`, `self.control`, `self.names`
        // or `iov`, each slot as long as the length stored beside it; all of them are borrowed
        // mutably for this call and outlive it. The kernel writes at most those lengths and
        // reports in msg_len / msg_controllen / msg_namelen how much it wrote. `hdrs.len()`
        // (<= n) entries are passed. MSG_DONTWAIT: the call never blocks; no timeout pointer.
        let got = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                hdrs.as_mut_ptr(),
                hdrs.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(err),
            };
        }
        let got = got as usize;
        // msg_controllen is a size_t in glibc, a socklen_t in musl: one cast for both.
        #[allow(clippy::unnecessary_cast)]
        for (len, h) in self.lens.iter_mut().zip(&hdrs).take(got) {
            *len = (
                h.msg_len as usize,
                h.msg_hdr.msg_controllen as usize,
                h.msg_hdr.msg_namelen as usize,
            );
        }
        Ok(got)
    }
}

/// Wait until the socket has a packet, or `timeout_ms`; true when readable (or in error: the next
/// receive tells which).
pub fn wait_readable(fd: &OwnedFd, timeout_ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, owned by this frame, passed with count 1.
    let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    r > 0
}

/// PACKET_STATISTICS: (packets the filter passed, dropped ones included; packets dropped) since
/// the last call (the kernel resets both on each read).
pub fn packet_stats(fd: &OwnedFd) -> io::Result<(u32, u32)> {
    let mut stats = [0u32; 2]; // struct tpacket_stats { tp_packets, tp_drops }
    let mut len = std::mem::size_of_val(&stats) as libc::socklen_t;
    // SAFETY: `stats` is 8 writable bytes and `len` says so; the kernel writes at most `len`
    // bytes and updates `len`.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_PACKET,
            PACKET_STATISTICS,
            stats.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((stats[0], stats[1]))
}

/// PACKET_VERSION, PACKET_RX_RING, TPACKET_V3 and the block status bits (if_packet.h).
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_VERSION: libc::c_int = 10;
const TPACKET_V3: libc::c_int = 2;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
/// Where a block's status word sits: struct tpacket_block_desc { u32 version; u32 offset_to_priv;
/// struct tpacket_hdr_v1 { u32 block_status; ... } }.
const BLOCK_STATUS: usize = 8;

/// struct tpacket_req3.
#[repr(C)]
struct Req3 {
    block_size: libc::c_uint,
    block_nr: libc::c_uint,
    frame_size: libc::c_uint,
    frame_nr: libc::c_uint,
    retire_blk_tov: libc::c_uint,
    sizeof_priv: libc::c_uint,
    feature_req_word: libc::c_uint,
}

fn set_option<T>(fd: &OwnedFd, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live, initialised T and its size is passed with it; the kernel only
    // reads that many bytes.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_PACKET,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A TPACKET_V3 receive ring mapped into this process: the kernel copies each packet into the
/// current block (in the softirq that delivers it, on the sending CPU for `lo`) and hands the block
/// over when it is full or `retire_ms` after its first packet. The reader walks a block's packets
/// in place (safe code in live.rs, over the byte slice `block` returns) and gives it back.
pub struct Ring {
    map: *mut u8,
    len: usize,
    block_size: usize,
    blocks: usize,
    current: usize,
}

// SAFETY: the mapping belongs to this Ring alone (made in `new`, unmapped in Drop); moving the
// Ring to the reader thread moves that ownership, and the borrows `block` hands out keep it on
// one thread at a time.
unsafe impl Send for Ring {}

impl Ring {
    /// Switch the socket to TPACKET_V3 and map a ring of `blocks` blocks of `block_size` bytes
    /// (a multiple of the page size, each at least as large as the snapshot length).
    pub fn new(fd: &OwnedFd, block_size: usize, blocks: usize, retire_ms: u32) -> io::Result<Ring> {
        set_option(fd, PACKET_VERSION, &TPACKET_V3)?;
        // V3 frames are of variable size; frame_size/frame_nr must still describe the blocks.
        let frame_size = 2048;
        let req = Req3 {
            block_size: block_size as libc::c_uint,
            block_nr: blocks as libc::c_uint,
            frame_size,
            frame_nr: (block_size / frame_size as usize * blocks) as libc::c_uint,
            retire_blk_tov: retire_ms,
            sizeof_priv: 0,
            feature_req_word: 0,
        };
        set_option(fd, PACKET_RX_RING, &req)?;
        let len = block_size * blocks;
        // SAFETY: a new shared mapping of the socket's ring, `len` bytes as requested above; the
        // kernel picks the address. The result is checked against MAP_FAILED.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Ring {
            map: map.cast(),
            len,
            block_size,
            blocks,
            current: 0,
        })
    }

    fn status_word(&self) -> *mut u32 {
        // SAFETY: current < blocks, so the offset stays inside the mapping; block starts are
        // page-aligned, so the u32 at offset 8 is aligned.
        unsafe {
            self.map
                .add(self.current * self.block_size + BLOCK_STATUS)
                .cast()
        }
    }

    /// The current block, once the kernel has handed it to user space; None while it still fills.
    pub fn block(&self) -> Option<&[u8]> {
        // SAFETY: the status word is inside the mapping (status_word); the kernel writes it
        // concurrently, hence a volatile read, and the acquire fence orders the reads of the
        // block's contents after it (the kernel's release pairs with it).
        let status = unsafe { std::ptr::read_volatile(self.status_word()) };
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        if status & TP_STATUS_USER == 0 {
            return None;
        }
        // SAFETY: the block lies inside the mapping, which lives as long as `self`. While its
        // status is TP_STATUS_USER the kernel does not write to it (it waits for `release`), so
        // the bytes do not change under the shared borrow.
        Some(unsafe {
            std::slice::from_raw_parts(
                self.map.add(self.current * self.block_size),
                self.block_size,
            )
        })
    }

    /// Give the current block back to the kernel and move to the next.
    pub fn release(&mut self) {
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        // SAFETY: as in `block`; the release fence keeps our reads of the block before the
        // kernel may see it free again.
        unsafe { std::ptr::write_volatile(self.status_word(), TP_STATUS_KERNEL) };
        self.current = (self.current + 1) % self.blocks;
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, with its length; no slice from `block` outlives
        // `self` (they borrow it).
        unsafe {
            libc::munmap(self.map.cast(), self.len);
        }
    }
}
