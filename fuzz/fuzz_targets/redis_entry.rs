//! A shared-revocation entry read from the Redis stream
//! (`postern_tower::redis_feed`): whoever can write to Redis controls its
//! fields. Input: `name=value` fields separated by NUL. An entry parses
//! only when whole, and what parses is what the writer's format gives back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern_tower::redis_feed::parse_fields;

fuzz_target!(|data: &[u8]| {
    let fields: Vec<(&str, &[u8])> = data
        .split(|b| *b == 0)
        .filter_map(|field| {
            let at = field.iter().position(|b| *b == b'=')?;
            Some((std::str::from_utf8(&field[..at]).ok()?, &field[at + 1..]))
        })
        .take(8)
        .collect();
    if let Some((digest, until)) = parse_fields(&fields) {
        // The publisher writes `d` as 32 lower-case hex digits and `u` in
        // decimal: that form parses back to the same entry.
        let d = format!("{digest:032x}");
        let u = until.to_string();
        assert_eq!(
            parse_fields(&[("d", d.as_bytes()), ("u", u.as_bytes())]),
            Some((digest, until))
        );
    }
});
