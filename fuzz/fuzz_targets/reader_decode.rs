//! Any bytes through the reader (as a regular file and as a pipe) and every frame through the
//! decoder, checksums on and off: nothing may panic, and the fast path must agree with the
//! general path.
#![no_main]

use _engine::decode::{decode, decode_general};
use _engine::pcap::Reader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for len in [Some(data.len() as u64), None] {
        let Ok(mut reader) = Reader::new(std::io::Cursor::new(data), "fuzz", len) else {
            continue;
        };
        while let Ok(Some(f)) = reader.next_frame() {
            let wirelen = Some(f.wirelen);
            let fast = decode(f.data, f.linktype, f.ts, f.frame, wirelen, false);
            let general = decode_general(f.data, f.linktype, f.ts, f.frame, wirelen, false);
            assert_eq!(fast, general);
            let _ = decode(f.data, f.linktype, f.ts, f.frame, wirelen, true);
        }
        let _ = reader.take_warnings();
    }
});
