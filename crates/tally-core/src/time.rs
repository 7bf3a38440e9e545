//! UTC time as integer microseconds since the Unix epoch (what the stores keep), calendar
//! months, and the parsing rules for client-sent times.

use crate::error::FieldError;
use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, TimeZone, Utc};
use std::fmt;

/// Microseconds since 1970-01-01T00:00:00Z.
pub type Micros = i64;

pub const MICROS_PER_SEC: i64 = 1_000_000;
pub const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SEC;

pub fn to_micros(t: DateTime<Utc>) -> Micros {
    t.timestamp_micros()
}

pub fn from_micros(m: Micros) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(m).expect("stored times are within chrono's range")
}

/// RFC 3339 text for a stored time, in UTC with milliseconds or microseconds as needed.
pub fn format_micros(m: Micros) -> String {
    from_micros(m).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Earliest and latest instants tally accepts: years 1970 to 9999 keep every time a
/// positive, day-divisible microsecond count in both stores.
const MIN_MICROS: Micros = 0;
const MAX_MICROS: Micros = 253_402_300_799_999_999;

/// Parses an RFC 3339 instant (with an offset, converted to UTC).
pub fn parse_instant(field: &str, s: &str) -> Result<Micros, FieldError> {
    let t = DateTime::parse_from_rfc3339(s.trim()).map_err(|_| {
        FieldError::new(
            field,
            format!("`{s}` is not an RFC 3339 time; expected for example 2025-11-20T10:00:00Z"),
        )
    })?;
    let m = t.with_timezone(&Utc).timestamp_micros();
    if !(MIN_MICROS..=MAX_MICROS).contains(&m) {
        return Err(FieldError::new(
            field,
            format!("`{s}` is outside 1970-01-01 to 9999-12-31"),
        ));
    }
    Ok(m)
}

/// Parses an `as_of`: an RFC 3339 instant, or a date `YYYY-MM-DD` meaning the last
/// microsecond of that UTC day.
pub fn parse_as_of(s: &str) -> Result<Micros, FieldError> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let next = d
            .succ_opt()
            .ok_or_else(|| FieldError::new("as_of", "date out of range"))?;
        return Ok(day_start(next) - 1);
    }
    parse_instant("as_of", s).map_err(|_| {
        FieldError::new(
            "as_of",
            format!(
                "`{s}` is neither an RFC 3339 time (2025-11-20T10:00:00Z) nor a date (2025-11-20)"
            ),
        )
    })
}

pub fn day_start(d: NaiveDate) -> Micros {
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .timestamp_micros()
}

/// The UTC date of an instant.
pub fn date_of(m: Micros) -> NaiveDate {
    from_micros(m).date_naive()
}

/// Start of the UTC day containing `m`.
pub fn floor_day(m: Micros) -> Micros {
    m - m.rem_euclid(MICROS_PER_DAY)
}

/// A calendar month in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i32,
    /// 1..=12
    pub month: u32,
}

impl Month {
    pub fn new(year: i32, month: u32) -> Option<Month> {
        (1..=12).contains(&month).then_some(Month { year, month })
    }

    pub fn of(m: Micros) -> Month {
        let d = date_of(m);
        Month {
            year: d.year(),
            month: d.month(),
        }
    }

    /// Parses `YYYY-MM`.
    pub fn parse(field: &str, s: &str) -> Result<Month, FieldError> {
        let bad = || {
            FieldError::new(
                field,
                format!("`{s}` is not a month; expected YYYY-MM, e.g. 2025-11"),
            )
        };
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        if year < 1970 {
            return Err(bad());
        }
        Month::new(year, month).ok_or_else(bad)
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("valid month")
    }

    /// First instant of the month.
    pub fn start(self) -> Micros {
        day_start(self.first_day())
    }

    /// First instant of the next month (the exclusive end).
    pub fn end(self) -> Micros {
        self.next().start()
    }

    /// Last instant of the month: where its month-end state is read.
    pub fn last_instant(self) -> Micros {
        self.end() - 1
    }

    pub fn next(self) -> Month {
        self.add(1)
    }

    pub fn prev(self) -> Month {
        self.add(-1)
    }

    /// `n` months later (earlier when negative). A named method rather than `+`, which
    /// would suggest adding a duration.
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, n: i32) -> Month {
        let idx = self.index() + n;
        Month::from_index(idx)
    }

    /// Months since year 0, for arithmetic.
    pub fn index(self) -> i32 {
        self.year * 12 + self.month as i32 - 1
    }

    pub fn from_index(idx: i32) -> Month {
        Month {
            year: idx.div_euclid(12),
            month: (idx.rem_euclid(12) + 1) as u32,
        }
    }

    pub fn days(self) -> i64 {
        (self.next().first_day() - self.first_day()).num_days()
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl serde::Serialize for Month {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The same point of the previous month as `as_of` (same day and time of month), clamped
/// to that month's end: the fair "to date" comparison point.
pub fn same_point_previous_month(as_of: Micros) -> Micros {
    let month = Month::of(as_of);
    let offset = as_of - month.start();
    let prev = month.prev();
    (prev.start() + offset).min(prev.last_instant())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_instants_with_offsets() {
        let a = parse_instant("time", "2025-11-20T10:00:00.123Z").unwrap();
        let b = parse_instant("time", "2025-11-20T11:00:00.123+01:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(a % MICROS_PER_SEC, 123_000);
        assert_eq!(format_micros(a), "2025-11-20T10:00:00.123Z");
        assert!(parse_instant("time", "2025-11-20").is_err());
        assert!(parse_instant("time", "yesterday").is_err());
        assert!(parse_instant("time", "1969-12-31T23:59:59Z").is_err());
    }

    #[test]
    fn as_of_date_is_end_of_day() {
        let m = parse_as_of("2025-11-30").unwrap();
        assert_eq!(format_micros(m), "2025-11-30T23:59:59.999999Z");
        assert_eq!(Month::of(m), Month::new(2025, 11).unwrap());
        assert_eq!(Month::of(m + 1), Month::new(2025, 12).unwrap());
    }

    #[test]
    fn month_arithmetic() {
        let m = Month::parse("month", "2025-01").unwrap();
        assert_eq!(m.prev().to_string(), "2024-12");
        assert_eq!(m.add(13).to_string(), "2026-02");
        assert_eq!(m.add(13).days(), 28);
        assert_eq!(Month::new(2024, 2).unwrap().days(), 29);
        assert!(Month::parse("month", "2025-13").is_err());
        assert!(Month::parse("month", "2025-1").is_err());
    }

    #[test]
    fn previous_month_point_is_clamped() {
        let t = parse_instant("t", "2025-03-31T12:00:00Z").unwrap();
        assert_eq!(
            format_micros(same_point_previous_month(t)),
            "2025-02-28T23:59:59.999999Z"
        );
        let t = parse_instant("t", "2025-03-15T12:00:00Z").unwrap();
        assert_eq!(
            format_micros(same_point_previous_month(t)),
            "2025-02-15T12:00:00Z"
        );
    }
}
