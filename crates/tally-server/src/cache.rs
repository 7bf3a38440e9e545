//! The caches in front of the analytics: finished responses, the subscription book, and
//! figures of whole days kept between requests (the LLM cost by tier of each day, with
//! the book; customers' totals of a service over the days before a period's last one).
//!
//! None can go stale, in this process or because of another one writing to the same
//! database. The kept day figures are checked against the event count of each of their
//! days, read in the same request (events are never changed once stored; see
//! `analytics::usage::tiers::TierDays` and `analytics::usage::users_kept`). The responses
//! and the book are keyed by the store's data version
//! ([`tally_store::Store::data_version`]), whose counters every write raises in its own
//! transaction. A request reads the version first (one small indexed read), so whatever it
//! computes afterwards is at least as new as the key it is stored under, and a write
//! anywhere moves every later request to new keys. Old entries are never invalidated one
//! by one: they stop being asked for and age out of the byte budget.
//!
//! Each endpoint's key holds only the counters its data comes from ([`ROUTES`]), so
//! ingesting events leaves the revenue answers cached, and an entity write leaves the
//! event-only ones.

use crate::analytics::usage::tiers::TierDays;
use crate::analytics::usage::users_kept::KeptUsers;
use crate::error::ApiResult;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::{Arc, Mutex};
use tally_core::billing::Book;
use tally_core::time::{parse_as_of, Micros};

/// The response header saying how the cache took part: `hit` (served from it), `miss`
/// (computed and stored), `bypass` (computed and not looked up: the request asked for
/// `Cache-Control: no-cache` or `no-store`, has no explicit `as_of`, or the cache is off).
pub const CACHE_HEADER: &str = "x-tally-cache";

/// Which data version counters an endpoint's answer depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deps {
    /// Plans, customers, subscriptions, invoices, costs, spend, services, alert rules.
    pub entities: bool,
    /// Events and the services they register.
    pub events: bool,
}

const ENTITIES: Deps = Deps {
    entities: true,
    events: false,
};
const EVENTS: Deps = Deps {
    entities: false,
    events: true,
};
const BOTH: Deps = Deps {
    entities: true,
    events: true,
};

/// The cached endpoints (the 21 analytics endpoints, by route) and what each reads. An
/// entry claiming less than the handler reads would serve stale answers, so when in doubt
/// an endpoint is `BOTH`; `tests/cache.rs` checks that every analytics route is listed.
pub const ROUTES: [(&str, Deps); 21] = [
    // The book (and for LTV and acquisition the costs and spend).
    ("/api/v1/analytics/revenue/mrr", ENTITIES),
    ("/api/v1/analytics/revenue/arr", ENTITIES),
    ("/api/v1/analytics/revenue/growth", ENTITIES),
    ("/api/v1/analytics/revenue/by-tier", ENTITIES),
    ("/api/v1/analytics/revenue/forecast", ENTITIES),
    ("/api/v1/analytics/users/ltv", ENTITIES),
    ("/api/v1/analytics/users/churn", ENTITIES),
    ("/api/v1/analytics/users/acquisition", ENTITIES),
    // The book, invoices, costs or rules together with event figures.
    ("/api/v1/analytics/metrics/summary", BOTH),
    ("/api/v1/analytics/metrics/kpis", BOTH),
    ("/api/v1/analytics/metrics/alerts", BOTH),
    ("/api/v1/billing/analytics/summary", BOTH),
    ("/api/v1/llm/costs", BOTH),
    ("/api/v1/analytics/services/cost-per-user", BOTH),
    ("/api/v1/analytics/services/adoption", BOTH),
    ("/api/v1/metering/service/{service_name}", BOTH),
    ("/api/v1/metering/summary", BOTH),
    // Events only.
    ("/api/v1/llm/usage/summary", EVENTS),
    ("/api/v1/llm/cache-stats", EVENTS),
    ("/api/v1/analytics/services/popularity", EVENTS),
    ("/api/v1/analytics/services/performance", EVENTS),
];

fn deps_of(route: &str) -> Option<Deps> {
    ROUTES.iter().find(|(r, _)| *r == route).map(|(_, d)| *d)
}

/// A response cache key: everything an analytics answer is a function of, besides the
/// process's own settings (currency, prices), which do not change while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    /// The request path, with its path parameters.
    path: String,
    /// The query without `as_of`, pairs decoded, sorted by name (stable, so repeated
    /// names keep their order) and encoded again.
    query: String,
    as_of: Micros,
    /// The counters of [`Deps`]; `None` for one the endpoint does not read.
    entities: Option<i64>,
    events: Option<i64>,
}

impl Key {
    fn weight(&self) -> usize {
        self.path.len() + self.query.len() + std::mem::size_of::<Key>()
    }
}

/// A stored 200: its headers and body, served again byte for byte.
#[derive(Debug)]
struct Stored {
    headers: HeaderMap,
    body: Bytes,
}

impl Stored {
    fn weight(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        self.body.len() + headers + std::mem::size_of::<Stored>()
    }
}

/// The caches of one process.
pub struct Caches {
    /// `None` when the configured size is 0.
    responses: Option<moka::sync::Cache<Key, Arc<Stored>>>,
    book: BookCache,
    /// Customers' totals of a service over whole days (`metering/service`).
    pub users: KeptUsers,
}

/// The most bytes [`KeptUsers`] holds: a month of one service's customers at 100,000
/// customers is ~9 MiB.
pub const KEPT_USERS_BYTES: u64 = 128 * 1024 * 1024;

impl Caches {
    /// Responses are bounded by `response_bytes` (keys, headers and bodies); 0 turns the
    /// response cache off. The book cache holds one book whatever the size.
    pub fn new(response_bytes: u64) -> Caches {
        let responses = (response_bytes > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(response_bytes)
                .weigher(|k: &Key, v: &Arc<Stored>| {
                    u32::try_from(k.weight() + v.weight()).unwrap_or(u32::MAX)
                })
                .build()
        });
        Caches {
            responses,
            book: BookCache::default(),
            users: KeptUsers::new(KEPT_USERS_BYTES),
        }
    }

    /// The subscription book in the reporting currency, at the current entities version.
    pub async fn book(&self, state: &AppState) -> ApiResult<Arc<Book>> {
        Ok(self.book.get(state).await?.book)
    }

    /// The book, with the LLM calls and cost by tier of whole days attributed with it
    /// (`llm/costs`; see [`TierDays`]).
    pub async fn book_and_llm_tiers(
        &self,
        state: &AppState,
    ) -> ApiResult<(Arc<Book>, Arc<TierDays>)> {
        let b = self.book.get(state).await?;
        Ok((b.book, b.llm_tiers))
    }

    /// Entries in the response cache (after pending evictions), for tests and logs.
    pub fn response_entries(&self) -> u64 {
        self.responses.as_ref().map_or(0, |c| {
            c.run_pending_tasks();
            c.entry_count()
        })
    }
}

/// What [`warm`] did, for the start-up log.
#[derive(Debug)]
pub struct Warmed {
    pub book_ms: u128,
    pub llm_tier_days: usize,
    pub llm_tiers_ms: u128,
    /// Services whose customers' totals of their latest month were kept.
    pub metered_services: usize,
    pub metered_ms: u128,
}

/// Fills the caches that do not depend on a request before the server takes requests:
/// the subscription book (with its history), the LLM cost by tier of whole days
/// (`llm/costs`) and each service's customers' totals of its latest month
/// (`metering/service`). Without it the first requests after a start pay for them
/// (seconds at 100,000 customers and 20 M events). Responses are not computed ahead.
pub async fn warm(state: &AppState) -> ApiResult<Warmed> {
    let started = std::time::Instant::now();
    state.cache.book(state).await?;
    let book_ms = started.elapsed().as_millis();
    let started = std::time::Instant::now();
    let llm_tier_days = crate::analytics::usage::llm::warm_cost_tiers(state).await?;
    let llm_tiers_ms = started.elapsed().as_millis();
    let started = std::time::Instant::now();
    let metered_services = crate::analytics::usage::metering::warm_top_users(state).await?;
    Ok(Warmed {
        book_ms,
        llm_tier_days,
        llm_tiers_ms,
        metered_services,
        metered_ms: started.elapsed().as_millis(),
    })
}

/// The last book built, with its month-end history, tagged with the entities version of
/// the snapshot it was read from. One at a time: a request that finds it out of date loads the new one while
/// others asking for the same version wait for it instead of loading it again.
#[derive(Default)]
struct BookCache {
    current: Mutex<Option<(i64, Booked)>>,
    loading: tokio::sync::Mutex<()>,
}

/// A book and what is derived from it alone (or from it and data versioned apart), so
/// that it goes when the book does.
#[derive(Clone)]
struct Booked {
    book: Arc<Book>,
    llm_tiers: Arc<TierDays>,
}

impl BookCache {
    /// The stored book if it is at least as new as `version` (a newer one, loaded by a
    /// request that started later, is as right for this request as the one it asked for).
    fn at_least(&self, version: i64) -> Option<Booked> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current
            .as_ref()
            .filter(|(v, _)| *v >= version)
            .map(|(_, b)| b.clone())
    }

    async fn get(&self, state: &AppState) -> ApiResult<Booked> {
        let version = state.store.data_version().await?.entities;
        if let Some(book) = self.at_least(version) {
            return Ok(book);
        }
        let _loading = self.loading.lock().await;
        if let Some(book) = self.at_least(version) {
            return Ok(book);
        }
        let d = state.store.billing_data().await?;
        let book = Book::new(&d.plans, &d.customers, &d.subscriptions, &d.changes)
            .with_currency(state.money.reporting);
        // The month-end history of the complete months (a function of the book alone, the
        // same for every as_of) is built here, once per book, while other requests wait
        // for this load without holding a thread; the revenue endpoints then compute only
        // the current month.
        book.history();
        // The days attributed with the book before stay right up to the first instant at
        // which a customer's tier differs (an invoice or a cost moves none).
        let before = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let llm_tiers = match before {
            Some((_, old)) => Arc::new(
                old.llm_tiers
                    .kept_until(book.first_tier_difference(&old.book)),
            ),
            None => Arc::default(),
        };
        let booked = Booked {
            book: Arc::new(book),
            llm_tiers,
        };
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current
            .as_ref()
            .is_none_or(|(v, _)| *v < d.version.entities)
        {
            *current = Some((d.version.entities, booked.clone()));
        }
        Ok(booked)
    }
}

/// What the request's `Cache-Control` allows: (look the answer up, store the answer).
fn directives(headers: &HeaderMap) -> (bool, bool) {
    let mut lookup = true;
    let mut store = true;
    for value in headers.get_all(header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for d in value.split(',').map(str::trim) {
            if d.eq_ignore_ascii_case("no-cache") {
                lookup = false;
            } else if d.eq_ignore_ascii_case("no-store") {
                lookup = false;
                store = false;
            }
        }
    }
    (lookup, store)
}

/// The query without `as_of`, normalised, and the one `as_of` resolved; `None` when the
/// request has no `as_of` (it means "now", which never repeats), more than one, or one
/// that does not parse (the handler answers 422).
fn normalise(query: Option<&str>) -> Option<(String, Micros)> {
    let mut as_of = None;
    let mut rest = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k == "as_of" {
            if as_of.is_some() {
                return None;
            }
            as_of = Some(parse_as_of(&v).ok()?);
        } else {
            rest.push((k, v));
        }
    }
    rest.sort_by(|a, b| a.0.cmp(&b.0));
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(rest)
        .finish();
    Some((query, as_of?))
}

fn mark(mut resp: Response, how: &'static str) -> Response {
    resp.headers_mut()
        .insert(CACHE_HEADER, HeaderValue::from_static(how));
    resp
}

/// Middleware, inside the authorization (so access and rate limits apply to cached
/// answers as to any other): answers the analytics endpoints from the response cache.
/// Only 200s are stored; errors are computed every time.
pub async fn serve(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let deps = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| deps_of(p.as_str()));
    let Some(deps) = deps.filter(|_| req.method() == Method::GET) else {
        return next.run(req).await;
    };
    let Some(cache) = state.cache.responses.as_ref() else {
        return mark(next.run(req).await, "bypass");
    };
    let (lookup, store) = directives(req.headers());
    let Some((query, as_of)) = normalise(req.uri().query()) else {
        return mark(next.run(req).await, "bypass");
    };
    let version = match state.store.data_version().await {
        Ok(v) => v,
        Err(e) => {
            // The handler will meet the same database; let it answer.
            tracing::warn!(error = %e, "reading the data version failed; not caching");
            return mark(next.run(req).await, "bypass");
        }
    };
    let key = Key {
        path: req.uri().path().to_owned(),
        query,
        as_of,
        entities: deps.entities.then_some(version.entities),
        events: deps.events.then_some(version.events),
    };
    if lookup {
        if let Some(hit) = cache.get(&key) {
            let mut resp = Response::new(Body::from(hit.body.clone()));
            *resp.headers_mut() = hit.headers.clone();
            return mark(resp, "hit");
        }
    }
    let resp = next.run(req).await;
    let how = if lookup { "miss" } else { "bypass" };
    if resp.status() != StatusCode::OK || !store {
        return mark(resp, how);
    }
    let (parts, body) = resp.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "reading an analytics response failed");
            return mark(
                Response::builder()
                    .status(StatusCode::INTERNAL_SERVER_ERROR)
                    .body(Body::empty())
                    .unwrap_or_default(),
                how,
            );
        }
    };
    cache.insert(
        key,
        Arc::new(Stored {
            headers: parts.headers.clone(),
            body: body.clone(),
        }),
    );
    mark(Response::from_parts(parts, Body::from(body)), how)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_normalised_and_as_of_resolved() {
        let (q, as_of) = normalise(Some("period=30d&as_of=2025-11-27&b=%41&a=2&a=1")).unwrap();
        assert_eq!(q, "a=2&a=1&b=A&period=30d");
        assert_eq!(as_of, parse_as_of("2025-11-27T23:59:59.999999Z").unwrap());
        // Another spelling of the same instant is the same key.
        let (_, same) = normalise(Some("as_of=2025-11-27T23%3A59%3A59.999999Z")).unwrap();
        assert_eq!(same, as_of);
        assert_eq!(normalise(Some("period=30d")), None, "no as_of: now");
        assert_eq!(normalise(None), None);
        assert_eq!(normalise(Some("as_of=yesterday")), None);
        assert_eq!(normalise(Some("as_of=2025-11-27&as_of=2025-11-28")), None);
    }

    #[test]
    fn cache_control() {
        let mut h = HeaderMap::new();
        assert_eq!(directives(&h), (true, true));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("No-Cache"));
        assert_eq!(directives(&h), (false, true));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=0, no-store"),
        );
        assert_eq!(directives(&h), (false, false));
    }

    #[test]
    fn every_route_is_listed_once() {
        let mut routes: Vec<&str> = ROUTES.iter().map(|(r, _)| *r).collect();
        routes.sort_unstable();
        routes.dedup();
        assert_eq!(routes.len(), ROUTES.len());
    }
}
