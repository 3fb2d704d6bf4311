//! The label index: `name -> value -> bitmap of stream ids`. One lives in the head (stream
//! ids are positions in the head) and one in each chunk (ids are the chunk's stream
//! ordinals). Matchers are evaluated once per distinct label value, so a regex over a
//! label with 30 values costs 30 regex runs however many rows the streams hold.

use std::collections::BTreeMap;

use roaring::RoaringBitmap;

use crate::codec::{put_uvarint, Reader};
use crate::labels::Labels;
use crate::matcher::Matcher;

#[derive(Debug, Default, Clone)]
pub struct LabelIndex {
    postings: BTreeMap<String, BTreeMap<String, RoaringBitmap>>,
    all: RoaringBitmap,
}

impl LabelIndex {
    pub fn add(&mut self, id: u32, labels: &Labels) {
        self.all.insert(id);
        for (n, v) in labels.iter() {
            // Allocate only for names and values not seen before.
            let values = match self.postings.get_mut(n) {
                Some(v) => v,
                None => self.postings.entry(n.to_string()).or_default(),
            };
            match values.get_mut(v) {
                Some(bm) => {
                    bm.insert(id);
                }
                None => {
                    values.insert(v.to_string(), RoaringBitmap::from_iter([id]));
                }
            }
        }
    }

    pub fn all(&self) -> &RoaringBitmap {
        &self.all
    }

    /// The ids of the streams whose labels satisfy every matcher. A label a stream lacks
    /// is matched as the empty string (`{a!="x"}` selects streams without `a`).
    pub fn resolve(&self, matchers: &[Matcher]) -> RoaringBitmap {
        let mut out = self.all.clone();
        for m in matchers {
            if out.is_empty() {
                break;
            }
            let values = self.postings.get(&m.name);
            let set = if m.matches_empty() {
                // Everything except the streams whose value for `name` does not match.
                let mut excluded = RoaringBitmap::new();
                for (v, bm) in values.into_iter().flatten() {
                    if !m.matches(v) {
                        excluded |= bm;
                    }
                }
                let mut s = self.all.clone();
                s -= excluded;
                s
            } else {
                let mut s = RoaringBitmap::new();
                for (v, bm) in values.into_iter().flatten() {
                    if m.matches(v) {
                        s |= bm;
                    }
                }
                s
            };
            out &= set;
        }
        out
    }

    /// Label names held by at least one stream of `ids`.
    pub fn names<'a>(&'a self, ids: &'a RoaringBitmap) -> impl Iterator<Item = &'a str> + 'a {
        self.postings
            .iter()
            .filter(move |(_, values)| values.values().any(|bm| !bm.is_disjoint(ids)))
            .map(|(n, _)| n.as_str())
    }

    /// Values of `name` held by at least one stream of `ids`.
    pub fn values<'a>(&'a self, name: &str, ids: &'a RoaringBitmap) -> impl Iterator<Item = &'a str> + 'a {
        self.postings
            .get(name)
            .into_iter()
            .flatten()
            .filter(move |(_, bm)| !bm.is_disjoint(ids))
            .map(|(v, _)| v.as_str())
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_uvarint(out, self.postings.len() as u64);
        for (name, values) in &self.postings {
            put_bytes(out, name.as_bytes());
            put_uvarint(out, values.len() as u64);
            for (v, bm) in values {
                put_bytes(out, v.as_bytes());
                let mut buf = Vec::with_capacity(bm.serialized_size());
                // Writing into a Vec cannot fail.
                let _ = bm.serialize_into(&mut buf);
                put_bytes(out, &buf);
            }
        }
        let mut buf = Vec::with_capacity(self.all.serialized_size());
        let _ = self.all.serialize_into(&mut buf);
        put_bytes(out, &buf);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Option<Self> {
        let mut postings = BTreeMap::new();
        for _ in 0..r.uvarint()? {
            let name = r.str()?.to_string();
            let mut values = BTreeMap::new();
            for _ in 0..r.uvarint()? {
                let v = r.str()?.to_string();
                let n = usize::try_from(r.uvarint()?).ok()?;
                let bm = RoaringBitmap::deserialize_from(r.bytes(n)?).ok()?;
                values.insert(v, bm);
            }
            postings.insert(name, values);
        }
        let n = usize::try_from(r.uvarint()?).ok()?;
        let all = RoaringBitmap::deserialize_from(r.bytes(n)?).ok()?;
        Some(LabelIndex { postings, all })
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(out, b.len() as u64);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::MatchOp;

    fn index() -> LabelIndex {
        let mut ix = LabelIndex::default();
        ix.add(0, &Labels::from_pairs([("service", "api"), ("env", "prod")]).unwrap());
        ix.add(1, &Labels::from_pairs([("service", "db"), ("env", "prod"), ("level", "warn")]).unwrap());
        ix.add(2, &Labels::from_pairs([("service", "kubelet"), ("env", "staging")]).unwrap());
        ix
    }

    fn ids(ix: &LabelIndex, ms: &[(&str, MatchOp, &str)]) -> Vec<u32> {
        let ms: Vec<Matcher> = ms.iter().map(|(n, o, v)| Matcher::new(*n, *o, *v).unwrap()).collect();
        ix.resolve(&ms).iter().collect()
    }

    #[test]
    fn resolves_all_four_operators() {
        let ix = index();
        assert_eq!(ids(&ix, &[("service", MatchOp::Eq, "db")]), vec![1]);
        assert_eq!(ids(&ix, &[("env", MatchOp::Neq, "prod")]), vec![2]);
        assert_eq!(ids(&ix, &[("service", MatchOp::Re, "db|kubelet")]), vec![1, 2]);
        assert_eq!(ids(&ix, &[("service", MatchOp::NotRe, "k.*"), ("env", MatchOp::Eq, "prod")]), vec![0, 1]);
    }

    #[test]
    fn absent_label_matches_empty() {
        let ix = index();
        assert_eq!(ids(&ix, &[("level", MatchOp::Eq, "")]), vec![0, 2]);
        assert_eq!(ids(&ix, &[("level", MatchOp::Neq, "warn")]), vec![0, 2]);
        assert_eq!(ids(&ix, &[("level", MatchOp::Re, ".+")]), vec![1]);
        assert_eq!(ids(&ix, &[("nope", MatchOp::Eq, "x")]), Vec::<u32>::new());
    }

    #[test]
    fn names_values_and_roundtrip() {
        let ix = index();
        let some = RoaringBitmap::from_iter([0u32, 2]);
        assert_eq!(ix.names(&some).collect::<Vec<_>>(), vec!["env", "service"]);
        assert_eq!(ix.values("service", &some).collect::<Vec<_>>(), vec!["api", "kubelet"]);
        let mut buf = Vec::new();
        ix.encode(&mut buf);
        let back = LabelIndex::decode(&mut Reader::new(&buf)).unwrap();
        assert_eq!(ids(&back, &[("service", MatchOp::Re, ".+")]), vec![0, 1, 2]);
        assert_eq!(back.names(back.all()).count(), 3);
    }
}
