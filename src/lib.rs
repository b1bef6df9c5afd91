//! handshake-probe's engine: everything that runs per packet.
//!
//! Pure Rust modules (no Python types) hold the rules; `python.rs` is the one boundary module that
//! PyO3 sees, built only with the `python` feature (maturin sets it), so `cargo test` needs no Python.
pub mod analysis;
pub mod anomalies;
pub mod checksum;
pub mod completeness;
pub mod decode;
pub mod endpoint;
pub mod flow;
pub mod flows;
#[cfg(target_os = "linux")]
pub mod live;
pub mod negotiation;
pub mod observe;
pub mod p0f;
pub mod pcap;
#[cfg(feature = "python")]
mod python;
pub mod record;
pub mod rows;
pub mod segment;
pub mod states;
pub mod syn;
pub mod tunnel;
pub mod zeek;
