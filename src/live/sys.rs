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
