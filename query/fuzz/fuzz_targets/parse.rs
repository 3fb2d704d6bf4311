//! Any input must parse or fail cleanly; whatever parses must print to text that parses
//! back to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(q) = std::str::from_utf8(data) else { return };
    if let Ok(e) = silt_query::parse(q) {
        let printed = e.to_string();
        let back = silt_query::parse(&printed).unwrap_or_else(|err| panic!("{q:?} printed as {printed:?}, which fails: {err}"));
        assert_eq!(back, e, "{q:?} -> {printed:?}");
    }
});
