//! A shared-revocation entry read from the Redis stream
//! (`postern_tower::redis_feed`): whoever can write to Redis controls its
//! fields. Input: `name=value` fields separated by NUL. An entry is
//! accepted only with the MAC of its `d` and `u` under the feed key; with
//! it, it parses only when whole, and what parses is what the writer's
//! format gives back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern_tower::redis_feed::{entry_mac, parse_fields, FeedKey};

const STREAM: &str = "postern:gate:revocations";

fuzz_target!(|data: &[u8]| {
    let Ok(key) = FeedKey::new(&[7u8; 32]) else {
        return;
    };
    let fields: Vec<(&str, &[u8])> = data
        .split(|b| *b == 0)
        .filter_map(|field| {
            let at = field.iter().position(|b| *b == b'=')?;
            Some((std::str::from_utf8(&field[..at]).ok()?, &field[at + 1..]))
        })
        .take(8)
        .collect();
    // As written into Redis by anyone: accepted only with a valid MAC,
    // which the input cannot forge.
    let forged = parse_fields(&fields, STREAM, &key);
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    };
    let (Some(d), Some(u)) = (field("d"), field("u")) else {
        assert_eq!(forged, None, "an entry without d or u");
        return;
    };
    // As a publisher with the key would sign the same fields.
    let m = entry_mac(&key, STREAM, d, u);
    let signed = [("d", d.as_bytes()), ("u", u.as_bytes()), ("m", m.as_bytes())];
    if let Some((digest, until)) = parse_fields(&signed, STREAM, &key) {
        // The publisher writes `d` as 32 lower-case hex digits and `u` in
        // decimal: that form parses back to the same entry.
        let d = format!("{digest:032x}");
        let u = until.to_string();
        let m = entry_mac(&key, STREAM, &d, &u);
        assert_eq!(
            parse_fields(&[("d", d.as_bytes()), ("u", u.as_bytes()), ("m", m.as_bytes())], STREAM, &key),
            Some((digest, until))
        );
        // The same MAC under another stream is refused.
        assert_eq!(
            parse_fields(&[("d", d.as_bytes()), ("u", u.as_bytes()), ("m", m.as_bytes())], "other", &key),
            None
        );
    }
    if let Some(accepted) = forged {
        // Only possible if the input carried the very MAC the key makes.
        assert_eq!(parse_fields(&signed, STREAM, &key), Some(accepted));
    }
});
