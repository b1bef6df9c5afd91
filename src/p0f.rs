//! p0f v3 TCP fingerprints: the raw_sig p0f prints for a SYN or SYN-ACK, and the label p0f's own
//! database (`p0f.fp`) gives it. A port of p0f 3.09b's fp_tcp.c (`dump_sig`, `detect_win_multi`,
//! `tcp_find_match`, `tcp_register_sig`) and readfp.c, rule for rule; where p0f does something odd
//! the code does the same and says so, since the point is to print what p0f prints.
//!
//! Signature: `ver:ittl:olen:mss:wsize,scale:olayout:quirks:pclass`.

use crate::syn::{write_layout, SynDetails, QUIRK_NAMES, Q_DF, Q_ECN, Q_FLOW, Q_NZ_ID, Q_ZERO_ID};

/// p0f's config.h: a TTL more than this below the guessed initial TTL is "+?".
const MAX_DIST: i32 = 35;
/// p0f-sendsyn's MSS: a SYN-ACK that echoes it shows `*` (config.h SPECIAL_MSS).
const SPECIAL_MSS: u16 = 1331;
/// sizeof(ipv4_hdr) + sizeof(tcp_hdr), sizeof(ipv6_hdr) + sizeof(tcp_hdr) (tcp.h MIN_TCP4/6)
const MIN_TCP4: i32 = 40;
const MIN_TCP6: i32 = 60;

/// What p0f reads from one SYN or SYN-ACK (its `struct tcp_sig` of a packet).
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    pub d: &'a SynDetails,
    pub ip_version: u8,
    pub window: u16,
    pub payload: bool,
    /// the SYN's MSS (p0f's `f->syn_mss`) when fingerprinting a SYN-ACK; 0 for a SYN
    pub syn_mss: u16,
    /// a SYN-ACK (flags SYN and ACK, no FIN/RST)
    pub synack: bool,
}

/// Guessed distance from the TTL to the next of 32, 64, 128, 255 (fp_tcp.c `guess_dist`).
fn guess_dist(ttl: u8) -> i32 {
    let ttl = i32::from(ttl);
    if ttl <= 32 {
        32 - ttl
    } else if ttl <= 64 {
        64 - ttl
    } else if ttl <= 128 {
        128 - ttl
    } else {
        255 - ttl
    }
}

/// `detect_win_multi`: the window as a multiple of the MSS or MTU, Some((multiplier, use_mtu));
/// C integer arithmetic (truncating / and %), as i32 gives it.
fn win_multi(p: &Packet<'_>) -> Option<(i32, bool)> {
    let win = i32::from(p.window);
    let mss = i32::from(p.d.p0f_mss);
    if win == 0 || mss < 100 {
        return None;
    }
    // p0f's candidates in its order (a fixed array: no allocation per record); 0 is "no candidate".
    let v6 = p.ip_version == 6;
    let syn_mss = i32::from(p.syn_mss);
    let divs: [(i32, bool); 12] = [
        (mss, false),
        // "Some systems will sometimes subtract 12 bytes when timestamps are in use."
        (if p.d.p0f_ts1 != 0 { mss - 12 } else { 0 }, false),
        // "Some systems use MTU on the wrong interface": 1500-byte Ethernet.
        (1500 - MIN_TCP4, false),
        (1500 - MIN_TCP4 - 12, false),
        (if v6 { 1500 - MIN_TCP6 } else { 0 }, false),
        (if v6 { 1500 - MIN_TCP6 - 12 } else { 0 }, false),
        (mss + MIN_TCP4, true),
        (mss + i32::from(p.d.tot_hdr), true),
        (if v6 { mss + MIN_TCP6 } else { 0 }, true),
        (1500, true),
        // "On SYN+ACKs, some systems use of the peer"
        (syn_mss, false),
        (if syn_mss != 0 { syn_mss - 12 } else { 0 }, false),
    ];
    for (div, mtu) in divs {
        if div != 0 && win % div == 0 {
            return Some((win / div, mtu));
        }
    }
    None
}

/// p0f's raw_sig for the packet (fp_tcp.c `dump_sig`).
pub fn raw_sig(p: &Packet<'_>) -> String {
    let mut out = String::with_capacity(64);
    write_raw_sig(p, &mut out);
    out
}

/// `raw_sig`, appended to `out` (the JSON writer's buffer: no string of its own).
pub fn write_raw_sig(p: &Packet<'_>, out: &mut String) {
    let d = p.d;
    let num = |out: &mut String, v: i64| out.push_str(itoa::Buffer::new().format(v));
    let dist = guess_dist(d.ttl);
    num(out, i64::from(p.ip_version));
    out.push(':');
    num(out, i64::from(d.ttl));
    out.push('+');
    if dist > MAX_DIST {
        out.push('?');
    } else {
        num(out, i64::from(dist));
    }
    out.push(':');
    num(out, i64::from(d.ip_opt_len));
    out.push(':');
    if d.p0f_mss == SPECIAL_MSS && p.synack {
        out.push('*');
    } else {
        num(out, i64::from(d.p0f_mss));
    }
    out.push(':');
    match win_multi(p) {
        // p0f keeps the multiplier in an s16 and prints it only when positive
        Some((m, mtu)) if m > 0 => {
            out.push_str(if mtu { "mtu*" } else { "mss*" });
            num(out, i64::from(m));
        }
        _ => num(out, i64::from(p.window)),
    }
    out.push(',');
    num(out, i64::from(d.p0f_wscale));
    out.push(':');
    write_layout(d, out);
    out.push(':');
    let mut first = true;
    for (bit, name) in QUIRK_NAMES.iter().enumerate() {
        if d.quirks & (1 << bit) != 0 {
            if !first {
                out.push(',');
            }
            out.push_str(name);
            first = false;
        }
    }
    out.push_str(if p.payload { ":+" } else { ":0" });
}

// ------------------------------------------------------------------------------------ database

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Win {
    Normal(i32),
    Any,
    Mod(i32),
    Mss(i32),
    Mtu(i32),
}

/// One `sig =` line of a [tcp:request] or [tcp:response] section.
#[derive(Clone, Debug)]
struct Sig {
    ver: Option<u8>,
    ttl: i32,
    bad_ttl: bool,
    olen: i32,
    mss: Option<i32>,
    win: Win,
    scale: Option<i32>,
    layout: Vec<u8>,
    eol_pad: i32,
    quirks: u32,
    pclass: Option<bool>,
    generic: bool,
    /// class -1 in p0f: a userland tool (label `s:!:...`), printed as "app"
    userland: bool,
    label: String,
}

/// A parsed p0f.fp: the TCP signatures of each direction, in file order.
#[derive(Clone, Debug, Default)]
pub struct Db {
    request: Vec<Sig>,
    response: Vec<Sig>,
}

/// What the database says about a packet: p0f's "os" (or "app") line and how it matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub text: String,
    pub app: bool,
    pub generic: bool,
    pub fuzzy: bool,
}

/// p0f's NAME_CHARS (readfp.h): what a label's name may hold besides letters and digits.
const NAME_CHARS: &str = " ./-_!?()";

impl Db {
    /// Parse p0f.fp text; an error names the line (p0f itself refuses such a file).
    pub fn parse(text: &str) -> Result<Db, String> {
        let mut db = Db::default();
        let mut classes: Vec<String> = Vec::new();
        // section: 0 none/other, 1 tcp request, 2 tcp response
        let mut section = 0u8;
        let mut label: Option<(bool, bool, String)> = None; // (generic, userland, text)
        let mut names: Vec<String> = Vec::new();
        for (i, raw) in text.split('\n').enumerate() {
            let line_no = i + 1;
            let line = raw.trim_start_matches([' ', '\t']);
            let line = line.trim_end_matches('\r');
            if line.is_empty() || line.starts_with(';') {
                continue;
            }
            let bad = |what: &str| format!("line {line_no}: {what}");
            if let Some(rest) = line.strip_prefix('[') {
                section = match rest.trim_end() {
                    "tcp:request]" => 1,
                    "tcp:response]" => 2,
                    "mtu]" | "http:request]" | "http:response]" => 0,
                    _ => return Err(bad("unrecognized section")),
                };
                label = None;
                continue;
            }
            let Some((key, val)) = line.split_once('=') else {
                return Err(bad("expected 'name = value'"));
            };
            let (key, val) = (key.trim(), val.trim_start_matches([' ', '\t']));
            match key {
                "classes" => {
                    for c in val.split(',') {
                        let c = c.trim();
                        if c.is_empty() || !c.chars().all(|ch| ch.is_ascii_alphanumeric()) {
                            return Err(bad("malformed class entry"));
                        }
                        classes.push(c.to_string());
                    }
                }
                "label" if section != 0 => {
                    label = Some(parse_label(val, &classes, &mut names).map_err(|e| bad(&e))?);
                }
                "sig" if section != 0 => {
                    let Some((generic, userland, text)) = &label else {
                        return Err(bad("'sig' before any 'label'"));
                    };
                    let mut sig = parse_sig(val).map_err(|e| bad(&e))?;
                    sig.generic = *generic;
                    sig.userland = *userland;
                    sig.label = text.clone();
                    if section == 1 {
                        db.request.push(sig);
                    } else {
                        db.response.push(sig);
                    }
                }
                "label" | "sig" | "sys" | "ua_os" => {}
                _ => return Err(bad(&format!("unrecognized field '{key}'"))),
            }
        }
        if db.request.is_empty() && db.response.is_empty() {
            return Err("no TCP signatures ([tcp:request] / [tcp:response] sig = ...)".into());
        }
        Ok(db)
    }

    pub fn len(&self) -> usize {
        self.request.len() + self.response.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// p0f's `tcp_find_match` for a SYN (`request`) or SYN-ACK; None where p0f prints "???".
    pub fn find(&self, p: &Packet<'_>) -> Option<Label> {
        let sigs = if p.synack {
            &self.response
        } else {
            &self.request
        };
        let d = p.d;
        let multi = win_multi(p);
        let (use_mtu, win_m) = match multi {
            Some((m, mtu)) => (mtu, m),
            None => (false, -1),
        };
        let ttl = i32::from(d.ttl);
        let mut fmatch: Option<&Sig> = None;
        let mut gmatch: Option<&Sig> = None;
        for r in sigs {
            // p0f compares a hash of the layout; equal layouts are what it means
            if r.layout.as_slice() != d.layout() {
                continue;
            }
            let mut fuzzy = false;
            let mut ref_quirks = r.quirks;
            if r.ver.is_none() {
                ref_quirks &= if p.ip_version == 4 {
                    !Q_FLOW
                } else {
                    !(Q_DF | Q_NZ_ID | Q_ZERO_ID)
                };
            }
            if ref_quirks != d.quirks {
                let deleted = (ref_quirks ^ d.quirks) & ref_quirks;
                let added = (ref_quirks ^ d.quirks) & d.quirks;
                // df or id+ gone, or id- or ecn appeared: a fuzzy match (only the first one kept)
                if fmatch.is_some()
                    || deleted & !(Q_DF | Q_NZ_ID) != 0
                    || added & !(Q_ZERO_ID | Q_ECN) != 0
                {
                    continue;
                }
                fuzzy = true;
            }
            if r.eol_pad != i32::from(d.eol_pad) || r.olen != i32::from(d.ip_opt_len) {
                continue;
            }
            if r.bad_ttl {
                if r.ttl < ttl {
                    continue;
                }
            } else if r.ttl < ttl || r.ttl - ttl > MAX_DIST {
                fuzzy = true;
            }
            if r.mss.is_some_and(|m| m != i32::from(d.p0f_mss)) {
                continue;
            }
            if r.scale.is_some_and(|s| s != i32::from(d.p0f_wscale)) {
                continue;
            }
            if r.pclass.is_some_and(|c| c != p.payload) {
                continue;
            }
            let win = i32::from(p.window);
            let ok = match r.win {
                Win::Normal(w) => w == win,
                Win::Mod(w) => win % w == 0,
                Win::Mss(w) => !use_mtu && w == win_m,
                Win::Mtu(w) => use_mtu && w == win_m,
                Win::Any => true,
            };
            if !ok {
                continue;
            }
            if !fuzzy {
                if !r.generic {
                    return Some(label(r, false));
                } else if gmatch.is_none() {
                    gmatch = Some(r);
                }
            } else if fmatch.is_none() {
                fmatch = Some(r);
            }
        }
        if let Some(g) = gmatch {
            return Some(label(g, false));
        }
        // "No fuzzy matching for userland tools."
        match fmatch {
            Some(f) if !f.userland => Some(label(f, true)),
            _ => None,
        }
    }
}

fn label(s: &Sig, fuzzy: bool) -> Label {
    Label {
        text: s.label.clone(),
        app: s.userland,
        generic: s.generic,
        fuzzy,
    }
}

/// `label = type:class:name:flavor` -> (generic, userland, "name flavor") as p0f prints it.
fn parse_label(
    val: &str,
    classes: &[String],
    names: &mut Vec<String>,
) -> Result<(bool, bool, String), String> {
    let mut parts = val.splitn(4, ':');
    let generic = match parts.next() {
        Some("g") => true,
        Some("s") => false,
        _ => return Err("malformed label type".into()),
    };
    let class = parts.next().ok_or("malformed label")?;
    let userland = class == "!";
    if !userland && !classes.iter().any(|c| c.eq_ignore_ascii_case(class)) {
        return Err(format!("unknown class '{class}'"));
    }
    let name = parts.next().ok_or("malformed label")?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || NAME_CHARS.contains(c))
    {
        return Err("malformed name".into());
    }
    let flavor = parts.next().ok_or("malformed label")?;
    // p0f prints the first spelling of a name it met (lookup is case-insensitive)
    let name = match names.iter().find(|n| n.eq_ignore_ascii_case(name)) {
        Some(n) => n.clone(),
        None => {
            names.push(name.to_string());
            name.to_string()
        }
    };
    let text = if flavor.is_empty() {
        name
    } else {
        format!("{name} {flavor}")
    };
    Ok((generic, userland, text))
}

/// Leading decimal digits of `s` and the rest.
fn digits(s: &str) -> (&str, &str) {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    s.split_at(n)
}

fn num(s: &str, what: &str) -> Result<i32, String> {
    s.parse::<i32>().map_err(|_| format!("bogus {what}"))
}

/// One `sig =` value (fp_tcp.c `tcp_register_sig`).
fn parse_sig(val: &str) -> Result<Sig, String> {
    let val = val.trim_end();
    let mut s = val;
    let ver = match s.get(..2) {
        Some("4:") => Some(4),
        Some("6:") => Some(6),
        Some("*:") => None,
        _ => return Err("unrecognized IP version".into()),
    };
    s = &s[2..];
    let (t, rest) = digits(s);
    let mut ttl = num(t, "initial TTL")?;
    let mut bad_ttl = false;
    if let Some(r) = rest.strip_prefix("-:") {
        bad_ttl = true;
        // p0f steps two bytes past the '-', over the ':' and the first byte of olen (always "0"
        // in practice): the olen it reads is then 0.
        s = r.get(1..).unwrap_or("");
    } else if let Some(r) = rest.strip_prefix('+') {
        let (a, r2) = digits(r);
        ttl = ttl
            .checked_add(num(a, "initial TTL")?)
            .ok_or("bogus initial TTL")?;
        s = r2.strip_prefix(':').ok_or("malformed signature")?;
    } else {
        s = rest.strip_prefix(':').ok_or("malformed signature")?;
    }
    if !(1..=255).contains(&ttl) {
        return Err("bogus initial TTL".into());
    }
    let (o, rest) = digits(s);
    let olen = if o.is_empty() {
        0
    } else {
        num(o, "IP option length")?
    };
    s = rest.strip_prefix(':').ok_or("malformed signature")?;
    let mss = if let Some(r) = s.strip_prefix("*:") {
        s = r;
        None
    } else {
        let (m, rest) = digits(s);
        s = rest.strip_prefix(':').ok_or("malformed signature")?;
        Some(num(m, "MSS")?)
    };
    let (w, rest) = s.split_once(',').ok_or("malformed window size")?;
    let win = if w == "*" {
        Win::Any
    } else if let Some(n) = w.strip_prefix('%') {
        Win::Mod(num(n, "'%' value")?)
    } else if let Some(n) = w.strip_prefix("mss*") {
        Win::Mss(num(n, "MSS multiplier")?)
    } else if let Some(n) = w.strip_prefix("mtu*") {
        Win::Mtu(num(n, "MTU multiplier")?)
    } else {
        Win::Normal(num(w, "window size")?)
    };
    if let Win::Mod(0) = win {
        return Err("bogus '%' value".into());
    }
    let (sc, rest) = rest.split_once(':').ok_or("malformed window scale")?;
    let scale = if sc == "*" {
        None
    } else {
        Some(num(sc, "window scale")?)
    };
    let (lay, rest) = rest.split_once(':').ok_or("malformed TCP options")?;
    let mut layout = Vec::new();
    let mut eol_pad = 0;
    for opt in lay.split(',').filter(|o| !o.is_empty()) {
        let kind = match opt {
            "nop" => 1,
            "mss" => 2,
            "ws" => 3,
            "sok" => 4,
            "sack" => 5,
            "ts" => 8,
            o if o.starts_with("eol+") => {
                eol_pad = num(&o[4..], "EOL padding")?;
                0
            }
            o if o.starts_with('?') => {
                u8::try_from(num(&o[1..], "'?' option")?).map_err(|_| "bogus '?' option")?
            }
            _ => return Err(format!("unrecognized TCP option '{opt}'")),
        };
        layout.push(kind);
    }
    let (qs, pclass) = rest.rsplit_once(':').ok_or("malformed quirks")?;
    let mut quirks = 0u32;
    for q in qs.split(',').filter(|q| !q.is_empty()) {
        let bit = QUIRK_NAMES
            .iter()
            .position(|n| *n == q)
            .ok_or_else(|| format!("unrecognized quirk '{q}'"))?;
        quirks |= 1 << bit;
    }
    let pclass = match pclass {
        "*" => None,
        "0" => Some(false),
        "+" => Some(true),
        _ => return Err("malformed payload class".into()),
    };
    Ok(Sig {
        ver,
        ttl,
        bad_ttl,
        olen,
        mss,
        win,
        scale,
        layout,
        eol_pad,
        quirks,
        pclass,
        generic: false,
        userland: false,
        label: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syn::{read, IpFields};

    fn linux_syn(ttl: u8, win: u16) -> (SynDetails, u16) {
        let mut h = vec![0u8; 20];
        h[4] = 1;
        h[12] = 10 << 4;
        h[13] = 0x02;
        h.extend_from_slice(&[
            2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 9, 0, 0, 0, 0, 1, 3, 3, 7,
        ]);
        let ip = IpFields {
            version: 4,
            ttl,
            flags_off: 0x4000,
            id: 7,
            hdr_len: 20,
            ..IpFields::default()
        };
        (*read(ip, &h), win)
    }

    #[test]
    fn linux_syn_signature() {
        let (d, win) = linux_syn(64, 64240);
        let p = Packet {
            d: &d,
            ip_version: 4,
            window: win,
            payload: false,
            syn_mss: 0,
            synack: false,
        };
        assert_eq!(
            raw_sig(&p),
            "4:64+0:0:1460:mss*44,7:mss,sok,ts,nop,ws:df,id+:0"
        );
        let (d, win) = linux_syn(50, 65535);
        let p = Packet {
            d: &d,
            window: win,
            ..p
        };
        assert_eq!(
            raw_sig(&p),
            "4:50+14:0:1460:65535,7:mss,sok,ts,nop,ws:df,id+:0"
        );
    }

    #[test]
    fn database_labels() {
        let db = Db::parse(
            "classes = win,unix,other\n[tcp:request]\nlabel = s:unix:Linux:3.11 and newer\n\
             sig = *:64:0:*:mss*44,7:mss,sok,ts,nop,ws:df,id+:0\n\
             label = g:unix:Linux:\nsig   = *:64:0:*:*,*:mss,sok,ts,nop,ws:df,id+:0\n\
             [tcp:response]\nlabel = s:!:nmap:\nsys = Linux\nsig = *:64-:0:1460:1024,0:mss::0\n",
        )
        .expect("parses");
        assert_eq!(db.len(), 3);
        let (d, _) = linux_syn(64, 64240);
        let p = Packet {
            d: &d,
            ip_version: 4,
            window: 64240,
            payload: false,
            syn_mss: 0,
            synack: false,
        };
        assert_eq!(
            db.find(&p).map(|l| l.text),
            Some("Linux 3.11 and newer".into())
        );
        let generic = db.find(&Packet { window: 1000, ..p }).expect("generic");
        assert!(generic.generic && generic.text == "Linux");
        // a TTL far below 64: fuzzy
        let (d, _) = linux_syn(20, 64240);
        let fz = db.find(&Packet { d: &d, ..p }).expect("fuzzy");
        assert!(fz.fuzzy);
        assert!(Db::parse("[tcp:request]\nsig = 4:64:0:*:*,*::0\n").is_err());
        // nothing a database says can panic the parser
        for bad in [
            "4:2147483647+2147483647:0:*:*,*:mss::0",
            "4:64:0:*:%0,*:mss::0",
            "4:64:0:*:*,*:eol+:0",
            "4:64",
            "",
            "4:64-:",
            "6:64:0:99999999999:*,*:?999::0",
        ] {
            let text = format!("classes = unix\n[tcp:request]\nlabel = s:unix:X:\nsig = {bad}\n");
            assert!(Db::parse(&text).is_err(), "{bad}");
        }
    }
}
