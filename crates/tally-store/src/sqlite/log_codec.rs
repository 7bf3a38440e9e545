//! The ingest log's encoding of events and audit lines: a compact binary form, written
//! once when a group is acknowledged and read back only when a log left unfolded by an
//! earlier process is replayed (`ingest_log`).
//!
//! Hand-written rather than a serde format because `Event` carries no serde derives (its
//! wire form is `tally-core`'s JSON, with different names and units) and this form must
//! round-trip every stored field exactly. Each blob starts with a format byte, so that a
//! later layout can be told apart.
//!
//! Format 2 (events, written since writing format 1's blobs to the log took 8.5 % of the
//! server's CPU at scale L, docs/performance.md): integers are zigzag LEB128 varints, an
//! event's time the difference from the one before; kinds and cost sources are a byte;
//! a flag option is one byte (0 none, 1 false, 2 true); floats are their 64 bits as 8
//! bytes little-endian; the id is its length (varint) then its bytes. The strings events
//! share (customer, service, unit, model, provider, gauge) are written once per blob:
//! each is 0 (none), 1 (a new string follows, the blob's next number) or 2 + the number
//! of one written before. A benchmark event takes about 65 bytes, against 182 in format
//! 1 (`a_benchmark_event_takes_65_bytes`).
//!
//! Format 1 (events and audit lines, still read): integers are 8 bytes little-endian; a
//! string is its byte length (u32) then its UTF-8 bytes; an option is a tag byte (0 =
//! none) then the value.

use crate::types::AuditEntry;
use std::collections::HashMap;
use tally_core::event::{CostSource, Event, EventKind};

/// The layout of audit lines, and of events written before format 2.
const FORMAT_1: u8 = 1;

/// The layout of events written by this version.
const FORMAT_2: u8 = 2;

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
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn zigzag(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }
    fn flag(&mut self, v: Option<bool>) {
        self.u8(match v {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        });
    }
    fn bytes(&mut self, s: &str) {
        self.varint(s.len() as u64);
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
    fn varint(&mut self) -> Result<u64, Undecodable> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Undecodable("a varint longer than 10 bytes"))
    }
    fn zigzag(&mut self) -> Result<i64, Undecodable> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }
    fn flag(&mut self) -> Result<Option<bool>, Undecodable> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(false)),
            2 => Ok(Some(true)),
            _ => Err(Undecodable("a flag is not 0, 1 or 2")),
        }
    }
    fn text(&mut self) -> Result<String, Undecodable> {
        let len = usize::try_from(self.varint()?).map_err(|_| Undecodable("cut short"))?;
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
    fn format(&mut self) -> Result<u8, Undecodable> {
        match self.u8()? {
            f @ (FORMAT_1 | FORMAT_2) => Ok(f),
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

fn byte_bool(b: u8) -> Result<bool, Undecodable> {
    match b {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(Undecodable("a flag is neither 0 nor 1")),
    }
}

/// The strings of one blob that events share, each written once: numbered in the order
/// first written.
#[derive(Default)]
struct Shared<'e>(HashMap<&'e str, u64, foldhash::fast::RandomState>);

impl<'e> Shared<'e> {
    fn put(&mut self, w: &mut Writer, s: Option<&'e str>) {
        let Some(s) = s else {
            return w.u8(0);
        };
        let next = self.0.len() as u64;
        match self.0.entry(s) {
            std::collections::hash_map::Entry::Occupied(known) => w.varint(2 + known.get()),
            std::collections::hash_map::Entry::Vacant(new) => {
                new.insert(next);
                w.u8(1);
                w.bytes(s);
            }
        }
    }
}

/// Reads what [`Shared::put`] wrote.
#[derive(Default)]
struct SharedRead(Vec<String>);

impl SharedRead {
    fn get(&mut self, r: &mut Reader<'_>) -> Result<Option<String>, Undecodable> {
        match r.varint()? {
            0 => Ok(None),
            1 => {
                let s = r.text()?;
                self.0.push(s.clone());
                Ok(Some(s))
            }
            n => usize::try_from(n - 2)
                .ok()
                .and_then(|i| self.0.get(i))
                .cloned()
                .map(Some)
                .ok_or(Undecodable("a shared string not written before")),
        }
    }
}

fn kind_code(k: EventKind) -> u8 {
    match k {
        EventKind::Usage => 0,
        EventKind::HealthCheck => 1,
        EventKind::Gauge => 2,
    }
}

fn cost_source_code(c: CostSource) -> u8 {
    match c {
        CostSource::Given => 0,
        CostSource::Priced => 1,
        CostSource::Unpriced => 2,
    }
}

/// `events` as one blob (format 2).
pub(crate) fn encode_events<'e>(events: impl ExactSizeIterator<Item = &'e Event>) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(64 * events.len() + 16));
    let mut shared = Shared::default();
    w.u8(FORMAT_2);
    w.varint(events.len() as u64);
    let mut time = 0i64;
    for e in events {
        w.bytes(&e.id);
        w.u8(kind_code(e.kind));
        w.zigzag(e.time.wrapping_sub(time));
        time = e.time;
        shared.put(&mut w, e.customer_id.as_deref());
        shared.put(&mut w, e.service.as_deref());
        w.zigzag(e.quantity);
        shared.put(&mut w, e.unit.as_deref());
        shared.put(&mut w, e.model.as_deref());
        shared.put(&mut w, e.provider.as_deref());
        w.zigzag(e.input_tokens);
        w.zigzag(e.cache_read_tokens);
        w.zigzag(e.cache_write_tokens);
        w.zigzag(e.output_tokens);
        w.flag(e.cache_hit);
        w.opt(e.latency_ms, Writer::f64);
        w.opt(e.status_code.map(i64::from), Writer::zigzag);
        w.zigzag(e.cost);
        w.u8(cost_source_code(e.cost_source));
        w.flag(e.up);
        shared.put(&mut w, e.gauge_name.as_deref());
        w.opt(e.gauge_value, Writer::f64);
    }
    w.0
}

/// The events of a blob of [`encode_events`], or of format 1 (an earlier version's).
pub(crate) fn decode_events(blob: &[u8]) -> Result<Vec<Event>, Undecodable> {
    let mut r = Reader(blob);
    let events = match r.format()? {
        FORMAT_1 => return decode_events_1(r),
        _ => decode_events_2(&mut r)?,
    };
    r.end()?;
    Ok(events)
}

/// The events of a format-2 blob, after its format byte.
fn decode_events_2(r: &mut Reader<'_>) -> Result<Vec<Event>, Undecodable> {
    let n = usize::try_from(r.varint()?).map_err(|_| Undecodable("a count out of range"))?;
    let mut events = Vec::with_capacity(n.min(r.0.len()));
    let mut shared = SharedRead::default();
    let mut time = 0i64;
    for _ in 0..n {
        let id = r.text()?;
        let kind = match r.u8()? {
            0 => EventKind::Usage,
            1 => EventKind::HealthCheck,
            2 => EventKind::Gauge,
            _ => return Err(Undecodable("unknown event kind")),
        };
        time = time.wrapping_add(r.zigzag()?);
        let mut e = Event::blank(id, kind, time);
        e.customer_id = shared.get(r)?;
        e.service = shared.get(r)?;
        e.quantity = r.zigzag()?;
        e.unit = shared.get(r)?;
        e.model = shared.get(r)?;
        e.provider = shared.get(r)?;
        e.input_tokens = r.zigzag()?;
        e.cache_read_tokens = r.zigzag()?;
        e.cache_write_tokens = r.zigzag()?;
        e.output_tokens = r.zigzag()?;
        e.cache_hit = r.flag()?;
        e.latency_ms = r.opt(Reader::f64)?;
        e.status_code = r.opt(|r| {
            i32::try_from(r.zigzag()?).map_err(|_| Undecodable("a status code out of range"))
        })?;
        e.cost = r.zigzag()?;
        e.cost_source = match r.u8()? {
            0 => CostSource::Given,
            1 => CostSource::Priced,
            2 => CostSource::Unpriced,
            _ => return Err(Undecodable("unknown cost source")),
        };
        e.up = r.flag()?;
        e.gauge_name = shared.get(r)?;
        e.gauge_value = r.opt(Reader::f64)?;
        events.push(e);
    }
    Ok(events)
}

/// The events of a format-1 blob, after its format byte.
fn decode_events_1(mut r: Reader<'_>) -> Result<Vec<Event>, Undecodable> {
    let n = usize::try_from(r.i64()?).map_err(|_| Undecodable("a negative count"))?;
    let mut events = Vec::with_capacity(n.min(r.0.len()));
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
    w.u8(FORMAT_1);
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
    if r.format()? != FORMAT_1 {
        return Err(Undecodable("an audit line of format 2"));
    }
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

    /// `events` as a format-1 blob, as versions before format 2 wrote them.
    fn encode_events_1<'e>(events: impl ExactSizeIterator<Item = &'e Event>) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(FORMAT_1);
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
            w.opt(e.cache_hit.map(u8::from), Writer::u8);
            w.opt(e.latency_ms, Writer::f64);
            w.opt(e.status_code.map(i64::from), Writer::i64);
            w.i64(e.cost);
            w.str(e.cost_source.as_str());
            w.opt(e.up.map(u8::from), Writer::u8);
            w.opt(e.gauge_name.as_deref(), Writer::str);
            w.opt(e.gauge_value, Writer::f64);
        }
        w.0
    }

    #[test]
    fn blobs_of_format_1_still_decode() {
        let events = random_events();
        let blob = encode_events_1(events.iter());
        assert_eq!(blob[0], 1);
        assert_eq!(decode_events(&blob).unwrap(), events);
        assert!(decode_events(&blob[..blob.len() - 1]).is_err());
    }

    #[test]
    fn a_shared_string_is_written_once_per_blob() {
        let event = |id: &str, customer: &str| Event {
            customer_id: Some(customer.into()),
            service: Some("summarize-service".into()),
            ..Event::blank(id, EventKind::Usage, 1_700_000_000_000_000)
        };
        let events = [
            event("e1", "customer-number-one"),
            event("e2", "customer-number-two"),
            event("e3", "customer-number-one"),
        ];
        let blob = encode_events(events.iter());
        let count = |s: &str| blob.windows(s.len()).filter(|w| *w == s.as_bytes()).count();
        assert_eq!(count("summarize-service"), 1);
        assert_eq!(count("customer-number-one"), 1);
        assert_eq!(count("customer-number-two"), 1);
        assert_eq!(decode_events(&blob).unwrap(), events);
    }

    /// Worked out by hand, field by field, for the benchmark's second event after its
    /// first (its spool), with another customer and a cost of 12,345 micro-credits.
    #[test]
    fn a_benchmark_event_takes_65_bytes() {
        let first = Event {
            customer_id: Some("cus_10143".into()),
            service: Some("open-webui".into()),
            unit: Some("api_calls".into()),
            model: Some("gpt-4o".into()),
            provider: Some("openai".into()),
            input_tokens: 2955,
            output_tokens: 155,
            cache_hit: Some(false),
            latency_ms: Some(2964.0),
            status_code: Some(200),
            cost: 12_345,
            cost_source: CostSource::Priced,
            ..Event::blank("evt_42_00000001", EventKind::Usage, 1_756_512_000_571_439)
        };
        let second = Event {
            id: "evt_42_00000002".into(),
            time: first.time + 1_937_244,
            customer_id: Some("cus_64627".into()),
            ..first.clone()
        };
        let one = encode_events([&first].into_iter());
        let two = encode_events([&first, &second].into_iter());
        // id 1 + 15, kind 1, time 4, customer 1 + 1 + 9, service 1, quantity 3, unit,
        // model, provider 1 each, tokens 2 + 1 + 1 + 2, cache hit 1, latency 1 + 8,
        // status 1 + 2, cost 3, cost source 1, up, gauge name, gauge value 1 each.
        assert_eq!(two.len() - one.len(), 65);
        // Format 1: id 4 + 15, kind 4 + 5, time 8, customer 1 + 4 + 9, service 1 + 4 +
        // 10, quantity 8, unit 1 + 4 + 9, model and provider 1 + 4 + 6 each, tokens 32,
        // cache hit 2, latency 9, status 9, cost 8, cost source 4 + 6, three options 1.
        let one_1 = encode_events_1([&first].into_iter());
        let two_1 = encode_events_1([&first, &second].into_iter());
        assert_eq!(two_1.len() - one_1.len(), 182);
        assert_eq!(decode_events(&two).unwrap(), [first, second]);
    }

    #[test]
    fn malformed_blobs_of_format_2_are_refused() {
        // A count as a varint of eleven bytes.
        let mut long = vec![2];
        long.extend([0xff; 10]);
        long.push(0);
        assert!(decode_events(&long).is_err());
        // One event whose customer names shared string number 0 before any was written.
        let mut blob = encode_events([Event::blank("a", EventKind::Usage, 0)].iter());
        let customer_at = 1 + 1 + 2 + 1 + 1; // format, count, id, kind, time
        assert_eq!(blob[customer_at], 0);
        blob[customer_at] = 2;
        assert!(decode_events(&blob).is_err());
        // An unknown format.
        assert!(decode_events(&[3, 0]).is_err());
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
