//! The ingest log's encoding of events and audit lines: a compact binary form, written
//! once when a group is acknowledged and read back only when a log left unfolded by an
//! earlier process is replayed (`ingest_log`).
//!
//! Hand-written rather than a serde format because `Event` carries no serde derives (its
//! wire form is `tally-core`'s JSON, with different names and units) and this form must
//! round-trip every stored field exactly. Integers are little-endian; a string is its
//! byte length (u32) then its UTF-8 bytes; an option is a tag byte (0 = none) then the
//! value. Each blob starts with a format byte, so that a later layout can be told apart.

use crate::types::AuditEntry;
use tally_core::event::{CostSource, Event, EventKind};

/// The layout written by this version.
const FORMAT: u8 = 1;

/// The blob's bytes did not decode: it was cut short, or written by another layout.
#[derive(Debug, thiserror::Error)]
#[error("the ingest log holds an entry that does not decode: {0}")]
pub(crate) struct Undecodable(&'static str);

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        let len = u32::try_from(s.len()).expect("strings in the log are under 4 GiB");
        self.0.extend_from_slice(&len.to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt<T>(&mut self, v: Option<T>, put: impl FnOnce(&mut Self, T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                put(self, v);
            }
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Undecodable> {
        if self.0.len() < n {
            return Err(Undecodable("cut short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, Undecodable> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, Undecodable> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn i64(&mut self) -> Result<i64, Undecodable> {
        Ok(i64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn f64(&mut self) -> Result<f64, Undecodable> {
        Ok(f64::from_bits(self.i64()? as u64))
    }
    fn string(&mut self) -> Result<String, Undecodable> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| Undecodable("a string is not UTF-8"))
    }
    fn opt<T>(
        &mut self,
        get: impl FnOnce(&mut Self) -> Result<T, Undecodable>,
    ) -> Result<Option<T>, Undecodable> {
        match self.u8()? {
            0 => Ok(None),
            1 => get(self).map(Some),
            _ => Err(Undecodable("an option tag is neither 0 nor 1")),
        }
    }
    fn format(&mut self) -> Result<(), Undecodable> {
        match self.u8()? {
            FORMAT => Ok(()),
            _ => Err(Undecodable("unknown format")),
        }
    }
    fn end(&self) -> Result<(), Undecodable> {
        match self.0.is_empty() {
            true => Ok(()),
            false => Err(Undecodable("bytes after the last value")),
        }
    }
}

fn bool_byte(b: bool) -> u8 {
    u8::from(b)
}

fn byte_bool(b: u8) -> Result<bool, Undecodable> {
    match b {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(Undecodable("a flag is neither 0 nor 1")),
    }
}

/// `events` as one blob.
pub(crate) fn encode_events<'e>(events: impl ExactSizeIterator<Item = &'e Event>) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(FORMAT);
    w.i64(events.len() as i64);
    for e in events {
        w.str(&e.id);
        w.str(e.kind.as_str());
        w.i64(e.time);
        w.opt(e.customer_id.as_deref(), Writer::str);
        w.opt(e.service.as_deref(), Writer::str);
        w.i64(e.quantity);
        w.opt(e.unit.as_deref(), Writer::str);
        w.opt(e.model.as_deref(), Writer::str);
        w.opt(e.provider.as_deref(), Writer::str);
        w.i64(e.input_tokens);
        w.i64(e.cache_read_tokens);
        w.i64(e.cache_write_tokens);
        w.i64(e.output_tokens);
        w.opt(e.cache_hit.map(bool_byte), Writer::u8);
        w.opt(e.latency_ms, Writer::f64);
        w.opt(e.status_code.map(i64::from), Writer::i64);
        w.i64(e.cost);
        w.str(e.cost_source.as_str());
        w.opt(e.up.map(bool_byte), Writer::u8);
        w.opt(e.gauge_name.as_deref(), Writer::str);
        w.opt(e.gauge_value, Writer::f64);
    }
    w.0
}

/// The events of a blob of [`encode_events`].
pub(crate) fn decode_events(blob: &[u8]) -> Result<Vec<Event>, Undecodable> {
    let mut r = Reader(blob);
    r.format()?;
    let n = usize::try_from(r.i64()?).map_err(|_| Undecodable("a negative count"))?;
    let mut events = Vec::with_capacity(n.min(blob.len()));
    for _ in 0..n {
        let id = r.string()?;
        let kind = EventKind::parse(&r.string()?).ok_or(Undecodable("unknown event kind"))?;
        let time = r.i64()?;
        let mut e = Event::blank(id, kind, time);
        e.customer_id = r.opt(Reader::string)?;
        e.service = r.opt(Reader::string)?;
        e.quantity = r.i64()?;
        e.unit = r.opt(Reader::string)?;
        e.model = r.opt(Reader::string)?;
        e.provider = r.opt(Reader::string)?;
        e.input_tokens = r.i64()?;
        e.cache_read_tokens = r.i64()?;
        e.cache_write_tokens = r.i64()?;
        e.output_tokens = r.i64()?;
        e.cache_hit = r.opt(|r| byte_bool(r.u8()?))?;
        e.latency_ms = r.opt(Reader::f64)?;
        e.status_code = r.opt(|r| {
            i32::try_from(r.i64()?).map_err(|_| Undecodable("a status code out of range"))
        })?;
        e.cost = r.i64()?;
        e.cost_source =
            CostSource::parse(&r.string()?).ok_or(Undecodable("unknown cost source"))?;
        e.up = r.opt(|r| byte_bool(r.u8()?))?;
        e.gauge_name = r.opt(Reader::string)?;
        e.gauge_value = r.opt(Reader::f64)?;
        events.push(e);
    }
    r.end()?;
    Ok(events)
}

/// An audit line as a blob (its `id` is the store's to assign, so it is not kept).
pub(crate) fn encode_audit(a: &AuditEntry) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(FORMAT);
    w.i64(a.at);
    w.opt(a.key_id.as_deref(), Writer::str);
    w.str(&a.method);
    w.str(&a.route);
    w.i64(i64::from(a.status));
    w.opt(a.client.as_deref(), Writer::str);
    w.0
}

/// The audit line of a blob of [`encode_audit`], with `id` 0.
pub(crate) fn decode_audit(blob: &[u8]) -> Result<AuditEntry, Undecodable> {
    let mut r = Reader(blob);
    r.format()?;
    let entry = AuditEntry {
        id: 0,
        at: r.i64()?,
        key_id: r.opt(Reader::string)?,
        method: r.string()?,
        route: r.string()?,
        status: u16::try_from(r.i64()?).map_err(|_| Undecodable("a status out of range"))?,
        client: r.opt(Reader::string)?,
    };
    r.end()?;
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::ingest::rollup_delta::random_events;

    #[test]
    fn events_come_back_field_for_field() {
        let mut events = random_events();
        // Values the random events may not reach: every option set and unset, extremes.
        events.push(Event {
            customer_id: Some("ü✓ \u{0}".into()),
            service: Some(String::new()),
            unit: Some("tokens".into()),
            model: Some("m".into()),
            provider: Some("p".into()),
            cache_hit: Some(false),
            latency_ms: Some(-0.0),
            status_code: Some(i32::MIN),
            cost: i64::MIN,
            cost_source: CostSource::Given,
            up: Some(true),
            gauge_name: Some("g".into()),
            gauge_value: Some(f64::MAX),
            input_tokens: i64::MAX,
            ..Event::blank("", EventKind::Gauge, i64::MIN)
        });
        events.push(Event::blank("plain", EventKind::HealthCheck, 0));
        let blob = encode_events(events.iter());
        assert_eq!(decode_events(&blob).unwrap(), events);
        assert!(decode_events(&blob[..blob.len() - 1]).is_err());
        let mut longer = blob.clone();
        longer.push(0);
        assert!(decode_events(&longer).is_err());
        assert!(decode_events(&[]).is_err());
        assert_eq!(decode_events(&encode_events([].iter())).unwrap(), []);
    }

    #[test]
    fn audit_lines_come_back_without_their_id() {
        let line = AuditEntry {
            id: 7,
            at: 1_700_000_000_000_000,
            key_id: Some("k1".into()),
            method: "POST".into(),
            route: "/api/v1/events".into(),
            status: 207,
            client: None,
        };
        let back = decode_audit(&encode_audit(&line)).unwrap();
        assert_eq!(back, AuditEntry { id: 0, ..line });
    }
}
