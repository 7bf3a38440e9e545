//! Query parameters shared by the analytics endpoints (metrics.md "Periods"): `as_of` and
//! the span parameters. A value outside the accepted set is a 422 that lists them.

use crate::error::ApiError;
use crate::state::AppState;
use serde::Deserialize;
use tally_core::time::{date_of, day_start, parse_as_of, Micros, Month, MICROS_PER_SEC};
use tally_store::Span;
use utoipa::IntoParams;

/// `as_of`: an RFC 3339 instant, or a date meaning the end of that UTC day; default now.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AsOfParam {
    /// RFC 3339 instant or YYYY-MM-DD (end of that UTC day). Default: now.
    pub as_of: Option<String>,
}

impl AsOfParam {
    pub fn resolve(&self, state: &AppState) -> Result<Micros, ApiError> {
        match &self.as_of {
            None => Ok(state.clock.now()),
            Some(s) => Ok(parse_as_of(s)?),
        }
    }
}

fn reject(field: &str, got: &str, accepted: &str) -> ApiError {
    ApiError::invalid(
        field,
        format!("`{got}` is not accepted; accepted values: {accepted}"),
    )
}

/// The last `days` calendar days: from the start of the day `days − 1` days before the
/// date of `as_of`, through `as_of`.
pub fn calendar_days(as_of: Micros, days: i64) -> Span {
    let first = date_of(as_of) - chrono::Days::new((days - 1) as u64);
    Span::through(day_start(first), as_of)
}

/// `range`: day, week, month, year (1, 7, 30, 365 calendar days).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Day,
    Week,
    Month,
    Year,
}

impl Range {
    pub const ACCEPTED: &'static str = "day, week, month, year";

    pub fn parse(s: Option<&str>) -> Result<Range, ApiError> {
        match s.unwrap_or("month") {
            "day" => Ok(Range::Day),
            "week" => Ok(Range::Week),
            "month" => Ok(Range::Month),
            "year" => Ok(Range::Year),
            other => Err(reject("range", other, Self::ACCEPTED)),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Range::Day => "day",
            Range::Week => "week",
            Range::Month => "month",
            Range::Year => "year",
        }
    }

    pub fn days(self) -> i64 {
        match self {
            Range::Day => 1,
            Range::Week => 7,
            Range::Month => 30,
            Range::Year => 365,
        }
    }

    pub fn span(self, as_of: Micros) -> Span {
        calendar_days(as_of, self.days())
    }
}

/// `period` of the LLM cost endpoint: `Nd` with N in 1..=365. Returns N.
pub fn parse_days_period(s: Option<&str>) -> Result<i64, ApiError> {
    let s = s.unwrap_or("30d");
    s.strip_suffix('d')
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| (1..=365).contains(n) && !s.starts_with('+') && !s.starts_with('0'))
        .ok_or_else(|| reject("period", s, "Nd with N from 1 to 365, e.g. 7d, 30d, 90d"))
}

/// `period` of the metering endpoints: calendar spans; the "this" ones end at `as_of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalendarPeriod {
    ThisMonth,
    LastMonth,
    ThisQuarter,
    LastQuarter,
    ThisYear,
    LastYear,
}

impl CalendarPeriod {
    pub const ACCEPTED: &'static str =
        "this_month, last_month, this_quarter, last_quarter, this_year, last_year";

    pub fn parse(s: Option<&str>) -> Result<CalendarPeriod, ApiError> {
        match s.unwrap_or("this_month") {
            "this_month" => Ok(CalendarPeriod::ThisMonth),
            "last_month" => Ok(CalendarPeriod::LastMonth),
            "this_quarter" => Ok(CalendarPeriod::ThisQuarter),
            "last_quarter" => Ok(CalendarPeriod::LastQuarter),
            "this_year" => Ok(CalendarPeriod::ThisYear),
            "last_year" => Ok(CalendarPeriod::LastYear),
            other => Err(reject("period", other, Self::ACCEPTED)),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CalendarPeriod::ThisMonth => "this_month",
            CalendarPeriod::LastMonth => "last_month",
            CalendarPeriod::ThisQuarter => "this_quarter",
            CalendarPeriod::LastQuarter => "last_quarter",
            CalendarPeriod::ThisYear => "this_year",
            CalendarPeriod::LastYear => "last_year",
        }
    }

    /// The first and last month of the period, and its span.
    pub fn span(self, as_of: Micros) -> Span {
        let m = Month::of(as_of);
        let quarter_start = Month {
            year: m.year,
            month: (m.month - 1) / 3 * 3 + 1,
        };
        let year_start = Month {
            year: m.year,
            month: 1,
        };
        match self {
            CalendarPeriod::ThisMonth => Span::through(m.start(), as_of),
            CalendarPeriod::LastMonth => Span::new(m.prev().start(), m.start()),
            CalendarPeriod::ThisQuarter => Span::through(quarter_start.start(), as_of),
            CalendarPeriod::LastQuarter => {
                Span::new(quarter_start.add(-3).start(), quarter_start.start())
            }
            CalendarPeriod::ThisYear => Span::through(year_start.start(), as_of),
            CalendarPeriod::LastYear => Span::new(year_start.add(-12).start(), year_start.start()),
        }
    }
}

/// `window` of the performance endpoint: the rolling span (as_of − window, as_of].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Hour,
    Day,
    Week,
    Month,
}

impl Window {
    pub const ACCEPTED: &'static str = "1h, 24h, 7d, 30d";

    pub fn parse(s: Option<&str>) -> Result<Window, ApiError> {
        match s.unwrap_or("24h") {
            "1h" => Ok(Window::Hour),
            "24h" => Ok(Window::Day),
            "7d" => Ok(Window::Week),
            "30d" => Ok(Window::Month),
            other => Err(reject("window", other, Self::ACCEPTED)),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Hour => "1h",
            Window::Day => "24h",
            Window::Week => "7d",
            Window::Month => "30d",
        }
    }

    pub fn seconds(self) -> i64 {
        match self {
            Window::Hour => 3600,
            Window::Day => 86_400,
            Window::Week => 7 * 86_400,
            Window::Month => 30 * 86_400,
        }
    }

    pub fn minutes(self) -> i64 {
        self.seconds() / 60
    }

    pub fn span(self, as_of: Micros) -> Span {
        Span::new(as_of - self.seconds() * MICROS_PER_SEC + 1, as_of + 1)
    }
}

/// An integer parameter within `lo..=hi` (e.g. `months` 1..=24, `months_ahead` 1..=12).
pub fn bounded(
    field: &str,
    v: Option<&str>,
    default: i64,
    lo: i64,
    hi: i64,
) -> Result<i64, ApiError> {
    let Some(s) = v else { return Ok(default) };
    s.parse::<i64>()
        .ok()
        .filter(|n| (lo..=hi).contains(n))
        .ok_or_else(|| reject(field, s, &format!("whole numbers from {lo} to {hi}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::time::{format_micros, parse_instant};

    fn t(s: &str) -> Micros {
        parse_instant("t", s).unwrap()
    }

    #[test]
    fn range_month_is_30_calendar_days() {
        let s = Range::Month.span(t("2025-11-20T10:00:00Z"));
        assert_eq!(format_micros(s.start), "2025-10-22T00:00:00Z");
        assert_eq!(s.end, t("2025-11-20T10:00:00Z") + 1);
        let s = Range::Day.span(t("2025-11-20T10:00:00Z"));
        assert_eq!(format_micros(s.start), "2025-11-20T00:00:00Z");
    }

    #[test]
    fn calendar_periods() {
        let as_of = t("2025-05-10T00:00:00Z");
        let s = CalendarPeriod::LastQuarter.span(as_of);
        assert_eq!(
            (format_micros(s.start), format_micros(s.end)),
            ("2025-01-01T00:00:00Z".into(), "2025-04-01T00:00:00Z".into())
        );
        let s = CalendarPeriod::ThisQuarter.span(as_of);
        assert_eq!(format_micros(s.start), "2025-04-01T00:00:00Z");
        let s = CalendarPeriod::LastYear.span(as_of);
        assert_eq!(format_micros(s.start), "2024-01-01T00:00:00Z");
        assert!(CalendarPeriod::parse(Some("yesterday")).is_err());
    }

    #[test]
    fn window_is_half_open_on_the_left() {
        let as_of = t("2025-05-10T12:00:00Z");
        let s = Window::Hour.span(as_of);
        assert!(!s.contains(t("2025-05-10T11:00:00Z")));
        assert!(s.contains(t("2025-05-10T11:00:00.000001Z")));
        assert!(s.contains(as_of));
    }

    #[test]
    fn days_period_and_bounds() {
        assert_eq!(parse_days_period(Some("7d")).unwrap(), 7);
        for bad in ["0d", "366d", "7", "d", "07d", "+7d"] {
            assert!(parse_days_period(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(bounded("months", Some("24"), 12, 1, 24).unwrap(), 24);
        assert!(bounded("months", Some("25"), 12, 1, 24).is_err());
        assert_eq!(bounded("months", None, 12, 1, 24).unwrap(), 12);
    }
}
