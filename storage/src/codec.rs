//! Compact binary encodings: the WAL record of one push, and structured metadata as
//! stored in the `metadata` column. Both are written into caller-owned buffers so the
//! hot paths allocate per batch, not per entry.

use crate::labels::Labels;
use crate::push::{PushEntry, PushRequest, PushStream};
use crate::tenant::TenantId;

const RECORD_VERSION: u8 = 1;

pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// A cursor over an encoded buffer; every read is bounds-checked so a corrupt record
/// yields an error, never a panic.
/// Ends a file body with the CRC-32 of everything before it (see [`unseal`]).
pub(crate) fn seal(mut body: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

/// Checks a [`seal`]ed file that starts with `magic`; a reader past the magic, or `None`
/// when the file is damaged or not of that kind.
pub(crate) fn unseal<'a>(buf: &'a [u8], magic: &[u8]) -> Option<Reader<'a>> {
    let (body, crc) = buf.split_at_checked(buf.len().checked_sub(4)?)?;
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) || !body.starts_with(magic) {
        return None;
    }
    Some(Reader::new(&body[magic.len()..]))
}

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub(crate) fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = *self.buf.get(i)?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.buf = &self.buf[i + 1..];
                return Some(v);
            }
        }
        None
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Some(a)
    }
    pub(crate) fn str(&mut self) -> Option<&'a str> {
        let n = usize::try_from(self.uvarint()?).ok()?;
        std::str::from_utf8(self.bytes(n)?).ok()
    }
    pub(crate) fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.bytes(8)?.try_into().ok()?))
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.bytes(1)?[0])
    }
}

/// An upper bound of [`encode_push`]'s output, so its buffer is allocated once.
pub(crate) fn encoded_push_size(tenant: &TenantId, req: &PushRequest) -> usize {
    // A varint takes a byte per 7 bits: lengths and counts take at most this many.
    const VARINT: usize = (usize::BITS as usize).div_ceil(7);
    let str_size = |s: &str| s.len() + VARINT;
    let mut n = 1 + str_size(tenant.as_str()) + VARINT;
    for s in &req.streams {
        n += VARINT + s.labels.iter().map(|(k, v)| str_size(k) + str_size(v)).sum::<usize>() + VARINT;
        n += s.entries.iter().map(|e| 8 + str_size(&e.line) + VARINT + e.metadata.iter().map(|(k, v)| str_size(k) + str_size(v)).sum::<usize>()).sum::<usize>();
    }
    n
}

/// Appends the WAL payload for one tenant's push to `out`.
pub(crate) fn encode_push(tenant: &TenantId, req: &PushRequest, out: &mut Vec<u8>) {
    out.push(RECORD_VERSION);
    put_str(out, tenant.as_str().as_bytes());
    put_uvarint(out, req.streams.len() as u64);
    for s in &req.streams {
        put_uvarint(out, s.labels.len() as u64);
        for (n, v) in s.labels.iter() {
            put_str(out, n.as_bytes());
            put_str(out, v.as_bytes());
        }
        put_uvarint(out, s.entries.len() as u64);
        for e in &s.entries {
            out.extend_from_slice(&e.ts.to_le_bytes());
            put_str(out, e.line.as_bytes());
            put_uvarint(out, e.metadata.len() as u64);
            for (n, v) in &e.metadata {
                put_str(out, n.as_bytes());
                put_str(out, v.as_bytes());
            }
        }
    }
}

/// Decodes a WAL payload; `None` when it is malformed.
pub(crate) fn decode_push(buf: &[u8]) -> Option<(TenantId, PushRequest)> {
    let mut r = Reader::new(buf);
    if r.u8()? != RECORD_VERSION {
        return None;
    }
    let tenant: TenantId = r.str()?.parse().ok()?;
    let n_streams = r.uvarint()?;
    let mut streams = Vec::with_capacity(n_streams.min(1 << 16) as usize);
    for _ in 0..n_streams {
        let n_labels = r.uvarint()?;
        let mut pairs = Vec::with_capacity(n_labels.min(64) as usize);
        for _ in 0..n_labels {
            pairs.push((r.str()?.to_string(), r.str()?.to_string()));
        }
        let labels = Labels::from_pairs(pairs).ok()?;
        let n_entries = r.uvarint()?;
        let mut entries = Vec::with_capacity(n_entries.min(1 << 20) as usize);
        for _ in 0..n_entries {
            let ts = r.i64()?;
            let line = r.str()?.to_string();
            let n_meta = r.uvarint()?;
            let mut metadata = Vec::with_capacity(n_meta.min(64) as usize);
            for _ in 0..n_meta {
                metadata.push((r.str()?.to_string(), r.str()?.to_string()));
            }
            entries.push(PushEntry { ts, line, metadata });
        }
        streams.push(PushStream { labels, entries });
    }
    r.is_empty().then_some((tenant, PushRequest { streams }))
}

/// Appends structured metadata in the `metadata` column's encoding: for each pair, the
/// name and the value as length-prefixed bytes.
pub fn encode_metadata<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>, out: &mut Vec<u8>) {
    for (n, v) in pairs {
        put_str(out, n.as_bytes());
        put_str(out, v.as_bytes());
    }
}

/// Iterates the pairs of an encoded `metadata` value. Stops at the first malformed byte.
pub fn decode_metadata(buf: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    let mut r = Reader::new(buf);
    std::iter::from_fn(move || {
        if r.is_empty() {
            return None;
        }
        Some((r.str()?, r.str()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> PushRequest {
        PushRequest {
            streams: vec![PushStream {
                labels: Labels::from_pairs([("app", "x"), ("env", "prod")]).unwrap(),
                entries: vec![
                    PushEntry { ts: 1, line: "hello".into(), metadata: vec![] },
                    PushEntry { ts: -5, line: "wörld".into(), metadata: vec![("trace_id".into(), "abc".into())] },
                ],
            }],
        }
    }

    #[test]
    fn push_roundtrip() {
        let t: TenantId = "acme".parse().unwrap();
        let mut buf = Vec::new();
        encode_push(&t, &sample(), &mut buf);
        assert!(buf.len() <= encoded_push_size(&t, &sample()), "the size bound holds");
        let (t2, r2) = decode_push(&buf).unwrap();
        assert_eq!(t2, t);
        assert_eq!(r2, sample());
        // Every strict prefix is malformed, never a panic.
        for i in 0..buf.len() {
            assert!(decode_push(&buf[..i]).is_none());
        }
    }

    #[test]
    fn metadata_roundtrip() {
        let mut buf = Vec::new();
        encode_metadata([("a", "1"), ("b", "")], &mut buf);
        assert_eq!(decode_metadata(&buf).collect::<Vec<_>>(), vec![("a", "1"), ("b", "")]);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_push(&bytes);
            let _ = decode_metadata(&bytes).count();
        }
    }
}
