//! Properties over generated subscription books: the movement identity holds every month,
//! data dated after `as_of` changes no answer, and input order changes no answer.

use super::churn::{churn_by_tier, customer_churn_rate};
use super::ledger::Ledger;
use super::tests::{customer, plan};
use super::*;
use crate::model::Interval;
use crate::time::Month;
use proptest::prelude::*;

const DAY: Micros = crate::time::MICROS_PER_DAY;

/// 2024-01-01T00:00:00Z.
const EPOCH: Micros = 1_704_067_200 * crate::time::MICROS_PER_SEC;

fn plans() -> Vec<Plan> {
    vec![
        plan("p1", "basic", Interval::Month, 49),
        plan("p2", "pro", Interval::Quarter, 299),
        plan("p3", "pro", Interval::Year, 1000),
        plan("p4", "team", Interval::Month, 7),
    ]
}

/// (customer, plan, start day, trial days, cancel after days, quantity, discount,
///  change: (after days, plan, quantity, discount))
type SubSpec = (
    u8,
    u8,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
    u8,
    Option<(i64, u8, i64, u8)>,
);

fn sub_spec() -> impl Strategy<Value = SubSpec> {
    (
        0u8..6,
        0u8..4,
        0i64..600,
        prop::option::of(1i64..40),
        prop::option::of(1i64..300),
        1i64..4,
        prop::sample::select(vec![0u8, 10, 50]),
        prop::option::of((
            1i64..300,
            0u8..4,
            1i64..4,
            prop::sample::select(vec![0u8, 25]),
        )),
    )
}

fn build(specs: &[SubSpec]) -> (Vec<Customer>, Vec<Subscription>, Vec<SubscriptionChange>) {
    let customers = (0..6)
        .map(|i| customer(&format!("c{i}"), "2024-01-01T00:00:00Z"))
        .collect();
    let mut subs = Vec::new();
    let mut changes = Vec::new();
    for (i, (c, p, start, trial, cancel, qty, disc, change)) in specs.iter().enumerate() {
        // Odd microsecond offsets put some events exactly on month boundaries and some not.
        let started_at = EPOCH + start * DAY + if i % 3 == 0 { 0 } else { 7 };
        let id = format!("s{i:02}");
        subs.push(Subscription {
            id: id.clone(),
            customer_id: format!("c{c}"),
            plan_id: format!("p{}", p + 1),
            quantity: *qty,
            discount_percent: Decimal::from(*disc),
            started_at,
            trial_ends_at: trial.map(|d| started_at + d * DAY),
            canceled_at: cancel.map(|d| started_at + d * DAY),
        });
        if let Some((after, p, q, d)) = change {
            changes.push(SubscriptionChange {
                subscription_id: id,
                effective_at: started_at + after * DAY,
                plan_id: Some(format!("p{}", p + 1)),
                quantity: Some(*q),
                discount_percent: Some(Decimal::from(*d)),
            });
        }
    }
    (customers, subs, changes)
}

/// Every answer a ledger gives for the months up to its current one.
fn answers(book: &Book, as_of: Micros) -> Vec<String> {
    let l = Ledger::new(book, as_of);
    let mut out = Vec::new();
    for k in 0..30 {
        let m = l.current.add(-k);
        out.push(format!(
            "{m} {} {} {:?} {:?} {:?}",
            l.total_mrr(m),
            l.paying(m),
            l.movements(m),
            customer_churn_rate(&l, m),
            churn_by_tier(&l, m)
        ));
    }
    for id in book.customer_ids() {
        out.push(format!(
            "{id} {:?} {}",
            book.tier_at(id, as_of),
            book.customer_mrr_at(id, as_of)
        ));
    }
    out.push(format!(
        "{:?} {:?}",
        ltv::average_ltv(&l),
        ltv::ltv_by_tier(&l)
    ));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn movement_identity_every_month(specs in prop::collection::vec(sub_spec(), 0..12), as_of_day in 0i64..800) {
        let (c, s, ch) = build(&specs);
        let book = Book::new(&plans(), &c, &s, &ch);
        let as_of = EPOCH + as_of_day * DAY + 1234;
        let l = Ledger::new(&book, as_of);
        let mut m = l.first();
        while m <= l.current {
            prop_assert_eq!(l.total_mrr(m), l.total_mrr(m.prev()) + l.movements(m).net(), "{}", m);
            m = m.next();
        }
    }

    #[test]
    fn data_after_as_of_changes_nothing(
        specs in prop::collection::vec(sub_spec(), 0..10),
        later in prop::collection::vec(sub_spec(), 1..5),
        as_of_day in 0i64..700,
    ) {
        let as_of = EPOCH + as_of_day * DAY + 99;
        let (c, s, ch) = build(&specs);
        let before = answers(&Book::new(&plans(), &c, &s, &ch), as_of);
        // Later subscriptions start after as_of; later changes of existing ones too.
        let (_, mut s2, mut ch2) = build(&later);
        for (i, sub) in s2.iter_mut().enumerate() {
            sub.id = format!("late{i}");
            sub.started_at += (as_of_day + 1) * DAY;
            sub.trial_ends_at = sub.trial_ends_at.map(|t| t + (as_of_day + 1) * DAY);
            sub.canceled_at = sub.canceled_at.map(|t| t + (as_of_day + 1) * DAY);
        }
        for (i, c) in ch2.iter_mut().enumerate() {
            c.subscription_id = format!("late{i}");
            c.effective_at += (as_of_day + 1) * DAY;
        }
        for sub in &s {
            ch2.push(SubscriptionChange {
                subscription_id: sub.id.clone(),
                effective_at: as_of + 1 + sub.started_at.max(as_of) - as_of,
                plan_id: Some("p4".into()),
                quantity: Some(9),
                discount_percent: None,
            });
        }
        // A change already effective at or before as_of keeps its key; skip collisions.
        ch2.retain(|c| !ch.iter().any(|o| o.subscription_id == c.subscription_id && o.effective_at == c.effective_at));
        let all_s: Vec<Subscription> = s.iter().cloned().chain(s2).collect();
        let all_ch: Vec<SubscriptionChange> = ch.iter().cloned().chain(ch2).collect();
        let after = answers(&Book::new(&plans(), &c, &all_s, &all_ch), as_of);
        prop_assert_eq!(before, after);
    }

    #[test]
    fn input_order_changes_nothing(specs in prop::collection::vec(sub_spec(), 0..12), as_of_day in 0i64..800, seed in any::<u64>()) {
        let as_of = EPOCH + as_of_day * DAY;
        let (c, s, ch) = build(&specs);
        let a = answers(&Book::new(&plans(), &c, &s, &ch), as_of);
        let mut rng = seed;
        let mut shuffle = |n: usize| -> Vec<usize> {
            let mut idx: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                idx.swap(i, (rng >> 33) as usize % (i + 1));
            }
            idx
        };
        let s2: Vec<Subscription> = shuffle(s.len()).into_iter().map(|i| s[i].clone()).collect();
        let ch2: Vec<SubscriptionChange> = shuffle(ch.len()).into_iter().map(|i| ch[i].clone()).collect();
        let c2: Vec<Customer> = shuffle(c.len()).into_iter().map(|i| c[i].clone()).collect();
        let mut p2 = plans();
        p2.reverse();
        let b = answers(&Book::new(&p2, &c2, &s2, &ch2), as_of);
        prop_assert_eq!(a, b);
        let _ = Month::of(as_of);
    }
}

/// Plans for the comparison with the reference: every interval, amounts that do not
/// divide by 3 or 12, a free plan, and two plans of one tier.
fn wide_plans() -> Vec<Plan> {
    vec![
        plan("p1", "basic", Interval::Month, 49),
        plan("p2", "pro", Interval::Quarter, 100),
        plan("p3", "pro", Interval::Year, 1001),
        plan("p4", "team", Interval::Month, 7),
        plan("p5", "free", Interval::Month, 0),
    ]
}

/// An instant near 2024–2026: a day with an odd microsecond, or exactly the first or the
/// last instant of a month (where month ends are read).
fn instant() -> impl Strategy<Value = Micros> {
    (0u8..3, -40i64..1000, 0i32..34).prop_map(|(kind, day, month)| {
        let m = Month::of(EPOCH).add(month);
        match kind {
            0 => EPOCH + day * DAY + 7,
            1 => m.start(),
            _ => m.last_instant(),
        }
    })
}

/// An instant after `start`: some days later, or any instant (possibly earlier: the book
/// must still agree with itself).
fn after(start: Micros, days: Option<i64>, other: Micros) -> Micros {
    days.map_or(other, |d| start + d * DAY)
}

/// (customer, plan (5: not a stored plan), start, trial, cancellation, quantity, discount,
///  changes: (when, plan, quantity, discount))
type WideSpec = (
    u8,
    u8,
    Micros,
    Option<(Option<i64>, Micros)>,
    Option<(Option<i64>, Micros)>,
    i64,
    &'static str,
    Vec<(
        (Option<i64>, Micros),
        Option<u8>,
        Option<i64>,
        Option<&'static str>,
    )>,
);

fn discount() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["0", "10", "12.5", "33", "100"])
}

fn later() -> impl Strategy<Value = (Option<i64>, Micros)> {
    (prop::option::weighted(0.8, 1i64..400), instant())
}

fn wide_spec() -> impl Strategy<Value = WideSpec> {
    (
        0u8..8,
        0u8..6,
        instant(),
        prop::option::of(later()),
        prop::option::of(later()),
        1i64..4,
        discount(),
        prop::collection::vec(
            (
                later(),
                prop::option::of(0u8..6),
                prop::option::of(1i64..5),
                prop::option::of(discount()),
            ),
            0..3,
        ),
    )
}

fn wide_book(specs: &[WideSpec]) -> Book {
    let customers: Vec<Customer> = (0..8)
        .map(|i| customer(&format!("c{i}"), "2024-01-01T00:00:00Z"))
        .collect();
    let plan_id = |p: u8| {
        if p == 5 {
            "gone".to_string()
        } else {
            format!("p{}", p + 1)
        }
    };
    let dec = |s: &str| s.parse::<Decimal>().unwrap();
    let mut subs = Vec::new();
    let mut changes = Vec::new();
    for (i, (c, p, start, trial, cancel, qty, disc, chs)) in specs.iter().enumerate() {
        let id = format!("s{i:02}");
        subs.push(Subscription {
            id: id.clone(),
            customer_id: format!("c{c}"),
            plan_id: plan_id(*p),
            quantity: *qty,
            discount_percent: dec(disc),
            started_at: *start,
            trial_ends_at: trial.map(|(d, o)| after(*start, d, o)),
            canceled_at: cancel.map(|(d, o)| after(*start, d, o)),
        });
        for ((d, o), p, q, disc) in chs {
            let effective_at = after(*start, *d, *o);
            if changes.iter().any(|c: &SubscriptionChange| {
                c.subscription_id == id && c.effective_at == effective_at
            }) {
                continue;
            }
            changes.push(SubscriptionChange {
                subscription_id: id.clone(),
                effective_at,
                plan_id: p.map(plan_id),
                quantity: *q,
                discount_percent: disc.map(dec),
            });
        }
    }
    Book::new(&wide_plans(), &customers, &subs, &changes)
}

/// Every figure of the fast ledger against the reference for the 40 months up to the
/// current one, formatted so that a difference in a decimal's scale shows too.
fn compare_with_reference(book: &Book, as_of: Micros) -> Result<(), TestCaseError> {
    use super::reference::{self, NaiveLedger};
    let fast = Ledger::new(book, as_of);
    let slow = NaiveLedger::new(book, as_of);
    prop_assert_eq!(fast.first(), slow.first());
    for k in 0..40 {
        let m = fast.current.add(-k);
        let t = fast.month_end(m);
        prop_assert_eq!(
            format!(
                "{} {} {} {:?} {:?} {:?}",
                fast.total_mrr(m),
                fast.paying(m),
                fast.subscribed(m),
                fast.movements(m),
                churn_by_tier(&fast, m),
                fast.tier_totals(m),
            ),
            format!(
                "{} {} {} {:?} {:?} {:?}",
                slow.total_mrr(m),
                slow.paying(m),
                reference::subscribed_customers(book, t),
                slow.movements(m),
                reference::churn_by_tier(&slow, m),
                reference::tier_totals(&slow, m),
            ),
            "month {} of as_of {}",
            m,
            crate::time::format_micros(as_of)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The ledger built on the book's history equals the straightforward evaluation of
    /// every (customer, month) at any as_of, including several as_of values on one book
    /// (the history is built once and reused), as_of on a month's first or last instant,
    /// before any data and after all of it.
    #[test]
    fn ledger_equals_the_reference(
        specs in prop::collection::vec(wide_spec(), 0..14),
        as_ofs in prop::collection::vec(instant(), 1..5),
    ) {
        let book = wide_book(&specs);
        for as_of in as_ofs {
            compare_with_reference(&book, as_of)?;
        }
    }

    /// Every subscriber's timeline gives the book's own MRR, tier and trial state at any
    /// instant, points and their neighbours included.
    #[test]
    fn timelines_equal_the_book(
        specs in prop::collection::vec(wide_spec(), 0..14),
        probes in prop::collection::vec(instant(), 0..8),
    ) {
        let book = wide_book(&specs);
        let history = book.history();
        for (i, id) in book.subscriber_ids().enumerate() {
            let mut ts = probes.clone();
            ts.extend(book.change_points(id, Micros::MIN, Micros::MAX).into_iter().flat_map(|p| [p - 1, p, p + 1]));
            for t in ts {
                let (mrr, tier, trial) = history.customer_state(i, t);
                prop_assert_eq!(
                    format!("{mrr} {tier:?} {trial}"),
                    format!("{} {:?} {}", book.customer_mrr_at(id, t), book.tier_at(id, t), book.is_trial_at(id, t)),
                    "{} at {}", id, t
                );
            }
        }
        // The same, for every subscriber at once.
        for &t in &probes {
            let states: Vec<String> = book
                .subscriber_states_at(t)
                .map(|s| format!("{} {} {:?} {}", s.customer_id, s.mrr, s.tier, s.trial))
                .collect();
            let expected: Vec<String> = book
                .subscriber_ids()
                .map(|id| format!("{id} {} {:?} {}", book.customer_mrr_at(id, t), book.tier_at(id, t), book.is_trial_at(id, t)))
                .collect();
            prop_assert_eq!(states, expected, "at {}", t);
        }
    }

    /// `first_tier_difference` is the first instant at which two books give some customer
    /// different tiers: before it every customer's tier agrees at every point of either
    /// book (and their neighbours), and at it one differs. The second book shares a prefix
    /// of the first one's subscriptions, so the difference is anywhere from none to all.
    #[test]
    fn first_tier_difference_is_the_first(
        specs in prop::collection::vec(wide_spec(), 0..10),
        keep in 0usize..10,
        extra in prop::collection::vec(wide_spec(), 0..3),
        probes in prop::collection::vec(instant(), 0..8),
    ) {
        let a = wide_book(&specs);
        let other: Vec<WideSpec> = specs.iter().take(keep).cloned().chain(extra).collect();
        let b = wide_book(&other);
        let first = a.first_tier_difference(&b);
        prop_assert_eq!(first, b.first_tier_difference(&a));
        let ids: Vec<String> = (0..8).map(|i| format!("c{i}")).collect();
        let mut ts = probes.clone();
        for id in &ids {
            for book in [&a, &b] {
                ts.extend(book.change_points(id, Micros::MIN, Micros::MAX).into_iter().flat_map(|p| [p - 1, p, p + 1]));
            }
        }
        for &t in &ts {
            if first.is_none_or(|f| t < f) {
                for id in &ids {
                    prop_assert_eq!(a.tier_at(id, t), b.tier_at(id, t), "{} at {}", id, t);
                }
            }
        }
        if let Some(f) = first {
            prop_assert!(ids.iter().any(|id| a.tier_at(id, f) != b.tier_at(id, f)));
        }
    }
}
