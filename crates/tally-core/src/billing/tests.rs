//! Hand-worked checks of the subscription rules.

use super::ledger::Ledger;
use super::*;
use crate::model::Interval;
use crate::time::{parse_instant, Month};
use std::str::FromStr;

pub(crate) fn t(s: &str) -> Micros {
    parse_instant("t", s).unwrap()
}

pub(crate) fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

pub(crate) fn plan(id: &str, tier: &str, interval: Interval, dollars: i64) -> Plan {
    Plan {
        id: id.into(),
        name: id.into(),
        tier: tier.into(),
        interval,
        amount: dollars * 100,
        currency: "USD".into(),
    }
}

pub(crate) fn customer(id: &str, created: &str) -> Customer {
    Customer {
        id: id.into(),
        name: None,
        email: None,
        created_at: t(created),
        channel: None,
    }
}

pub(crate) fn sub(id: &str, cust: &str, plan: &str, started: &str) -> Subscription {
    Subscription {
        id: id.into(),
        customer_id: cust.into(),
        plan_id: plan.into(),
        quantity: 1,
        discount_percent: Decimal::ZERO,
        started_at: t(started),
        trial_ends_at: None,
        canceled_at: None,
    }
}

fn plans() -> Vec<Plan> {
    vec![
        plan("basic_m", "basic", Interval::Month, 100),
        plan("pro_y", "pro", Interval::Year, 600),
        plan("pro_y12", "pro", Interval::Year, 1200),
        plan("q90", "quarterly", Interval::Quarter, 90),
    ]
}

#[test]
fn mrr_normalises_intervals() {
    // 100 × $100/month = 10,000 plus 50 × $600/year = 50 × 50 = 2,500 → 12,500.
    let mut customers = Vec::new();
    let mut subs = Vec::new();
    for i in 0..150 {
        let id = format!("c{i:03}");
        customers.push(customer(&id, "2025-01-01T00:00:00Z"));
        let p = if i < 100 { "basic_m" } else { "pro_y" };
        subs.push(sub(&format!("s{i:03}"), &id, p, "2025-01-01T00:00:00Z"));
    }
    let book = Book::new(&plans(), &customers, &subs, &[]);
    assert_eq!(book.mrr_at(t("2025-02-01T00:00:00Z")), d("12500"));
    // Before the start nothing is MRR.
    assert_eq!(book.mrr_at(t("2024-12-31T23:59:59Z")), Decimal::ZERO);

    // $1,200 a year is $100 a month; $90 a quarter is $30 a month.
    let one = |p: &str| {
        let b = Book::new(
            &plans(),
            &[customer("x", "2025-01-01T00:00:00Z")],
            &[sub("s", "x", p, "2025-01-01T00:00:00Z")],
            &[],
        );
        b.customer_mrr_at("x", t("2025-03-01T00:00:00Z"))
    };
    assert_eq!(one("pro_y12"), d("100"));
    assert_eq!(one("q90"), d("30"));
}

#[test]
fn discount_quantity_and_changes() {
    let c = [customer("x", "2025-01-01T00:00:00Z")];
    let mut s = sub("s", "x", "basic_m", "2025-01-01T00:00:00Z");
    s.discount_percent = d("50");
    s.quantity = 3;
    // 3 seats × $100 × (1 − 0.5) = $150.
    let ch = SubscriptionChange {
        subscription_id: "s".into(),
        effective_at: t("2025-03-01T00:00:00Z"),
        plan_id: Some("pro_y12".into()),
        quantity: None,
        discount_percent: Some(Decimal::ZERO),
    };
    let book = Book::new(
        &plans(),
        &c,
        std::slice::from_ref(&s),
        std::slice::from_ref(&ch),
    );
    assert_eq!(
        book.customer_mrr_at("x", t("2025-02-28T23:59:59.999999Z")),
        d("150")
    );
    // From March: 3 × $1,200 / 12 = $300, no discount.
    assert_eq!(
        book.customer_mrr_at("x", t("2025-03-01T00:00:00Z")),
        d("300")
    );
    assert_eq!(
        book.tier_at("x", t("2025-02-10T00:00:00Z")).as_deref(),
        Some("basic")
    );
    assert_eq!(
        book.tier_at("x", t("2025-03-10T00:00:00Z")).as_deref(),
        Some("pro")
    );
    assert_eq!(
        book.change_points("x", t("2025-01-01T00:00:00Z"), t("2026-01-01T00:00:00Z")),
        vec![t("2025-03-01T00:00:00Z")]
    );
}

#[test]
fn trials_and_cancellations() {
    let c = [customer("x", "2025-01-01T00:00:00Z")];
    let mut s = sub("s", "x", "basic_m", "2025-01-01T00:00:00Z");
    s.trial_ends_at = Some(t("2025-01-15T00:00:00Z"));
    s.canceled_at = Some(t("2025-04-01T00:00:00Z"));
    let book = Book::new(&plans(), &c, &[s], &[]);
    // In trial: MRR 0, tier `trial`.
    assert_eq!(
        book.customer_mrr_at("x", t("2025-01-14T23:59:59Z")),
        Decimal::ZERO
    );
    assert_eq!(
        book.tier_at("x", t("2025-01-14T23:59:59Z")).as_deref(),
        Some("trial")
    );
    // At trial end it pays.
    assert_eq!(
        book.customer_mrr_at("x", t("2025-01-15T00:00:00Z")),
        d("100")
    );
    assert_eq!(
        book.tier_at("x", t("2025-01-15T00:00:00Z")).as_deref(),
        Some("basic")
    );
    // Active on [start, cancel): nothing at the cancellation instant.
    assert_eq!(
        book.customer_mrr_at("x", t("2025-03-31T23:59:59.999999Z")),
        d("100")
    );
    assert_eq!(
        book.customer_mrr_at("x", t("2025-04-01T00:00:00Z")),
        Decimal::ZERO
    );
    assert_eq!(book.tier_at("x", t("2025-04-01T00:00:00Z")), None);
    assert_eq!(book.tier_at("x", t("2024-12-01T00:00:00Z")), None);
}

#[test]
fn tier_ties_go_to_the_smallest_plan_id() {
    let ps = vec![
        plan("b_plan", "zeta", Interval::Month, 100),
        plan("a_plan", "alpha", Interval::Month, 100),
        plan("c", "big", Interval::Month, 101),
    ];
    let c = [customer("x", "2025-01-01T00:00:00Z")];
    let subs = [
        sub("s1", "x", "b_plan", "2025-01-01T00:00:00Z"),
        sub("s2", "x", "a_plan", "2025-01-01T00:00:00Z"),
    ];
    let book = Book::new(&ps, &c, &subs, &[]);
    // Both $100: tie → plan id a_plan < b_plan → alpha.
    assert_eq!(
        book.tier_at("x", t("2025-02-01T00:00:00Z")).as_deref(),
        Some("alpha")
    );
    let subs = [
        subs[0].clone(),
        subs[1].clone(),
        sub("s3", "x", "c", "2025-03-01T00:00:00Z"),
    ];
    let book = Book::new(&ps, &c, &subs, &[]);
    // $101 beats both.
    assert_eq!(
        book.tier_at("x", t("2025-03-02T00:00:00Z")).as_deref(),
        Some("big")
    );
}

#[test]
fn change_at_first_instant_of_next_month_belongs_to_it() {
    let c = [customer("x", "2025-01-01T00:00:00Z")];
    let mut s = sub("s", "x", "basic_m", "2025-01-10T00:00:00Z");
    s.canceled_at = Some(t("2025-03-01T00:00:00Z"));
    let ch = SubscriptionChange {
        subscription_id: "s".into(),
        effective_at: t("2025-02-01T00:00:00Z"),
        plan_id: None,
        quantity: Some(2),
        discount_percent: None,
    };
    let book = Book::new(&plans(), &c, &[s], &[ch]);
    let l = Ledger::new(&book, t("2025-04-15T00:00:00Z"));
    let jan = Month::new(2025, 1).unwrap();
    // January ends at $100: the quantity change at Feb 1 00:00 is February's expansion.
    assert_eq!(l.total_mrr(jan), d("100"));
    assert_eq!(l.movements(jan).new, d("100"));
    assert_eq!(l.movements(jan.next()).expansion, d("100"));
    // The cancellation at Mar 1 00:00 is March's churn, not February's.
    assert_eq!(l.total_mrr(jan.next()), d("200"));
    assert_eq!(l.movements(jan.add(2)).churn, d("200"));
    assert_eq!(l.movements(jan.add(2)).churned_customers, 1);
}

#[test]
fn new_versus_reactivation_and_identity() {
    // x pays Jan–Feb, leaves in March, returns in May: May is a reactivation.
    // y starts in May: new.
    let cs = [
        customer("x", "2025-01-01T00:00:00Z"),
        customer("y", "2025-01-01T00:00:00Z"),
    ];
    let mut s1 = sub("s1", "x", "basic_m", "2025-01-05T00:00:00Z");
    s1.canceled_at = Some(t("2025-03-05T00:00:00Z"));
    let s2 = sub("s2", "x", "q90", "2025-05-05T00:00:00Z");
    let s3 = sub("s3", "y", "pro_y12", "2025-05-06T00:00:00Z");
    let book = Book::new(&plans(), &cs, &[s1, s2, s3], &[]);
    let l = Ledger::new(&book, t("2025-06-10T00:00:00Z"));
    let may = Month::new(2025, 5).unwrap();
    let mv = l.movements(may);
    assert_eq!((mv.new, mv.new_customers), (d("100"), 1));
    assert_eq!((mv.reactivation, mv.reactivated_customers), (d("30"), 1));
    let mar = Month::new(2025, 3).unwrap();
    assert_eq!(l.movements(mar).churn, d("100"));
    for i in 0..l.current.index() - l.first().index() {
        let m = l.first().add(i + 1);
        assert_eq!(
            l.total_mrr(m),
            l.total_mrr(m.prev()) + l.movements(m).net(),
            "{m}"
        );
    }
}

#[test]
fn ltv_from_arpa_and_churn() {
    // ARPA $100 and 5 % monthly churn → LTV = 100 / 0.05 = $2,000; lifespan 20 months.
    assert_eq!(
        ltv::ltv_of(Some(d("100")), Some(d("0.05"))),
        Some(d("2000"))
    );
    assert_eq!(ltv::lifespan_months(Some(d("0.05"))), Some(d("20")));
    assert_eq!(ltv::ltv_of(Some(d("100")), Some(Decimal::ZERO)), None);
}

#[test]
fn churn_rate_over_a_ledger() {
    // 20 customers at $100 from 2025-01-01; one cancels in each of Feb..Jul on the 10th.
    // Paying at month starts: Feb 20, Mar 19, Apr 18, May 17, Jun 16, Jul 15.
    // Churn rates: 1/20, 1/19, ..., 1/15; as_of in August → last 6 complete months
    // are Feb..Jul, c = mean(1/20..1/15) = (0.05 + 0.0526316 + 0.0555556 + 0.0588235
    // + 0.0625 + 0.0666667) / 6 = 0.0576962; ARPA now = $100 (14 left) → LTV ≈ 1733.22.
    let mut cs = Vec::new();
    let mut subs = Vec::new();
    for i in 0..20 {
        let id = format!("c{i:02}");
        cs.push(customer(&id, "2024-12-20T00:00:00Z"));
        let mut s = sub(&format!("s{i:02}"), &id, "basic_m", "2025-01-01T00:00:00Z");
        if i < 6 {
            s.canceled_at = Some(t(&format!("2025-{:02}-10T00:00:00Z", i + 2)));
        }
        subs.push(s);
    }
    let book = Book::new(&plans(), &cs, &subs, &[]);
    let l = Ledger::new(&book, t("2025-08-15T00:00:00Z"));
    assert_eq!(
        churn::customer_churn_rate(&l, Month::new(2025, 2).unwrap()),
        Some(d("5"))
    );
    assert_eq!(
        churn::customer_churn_rate(&l, Month::new(2025, 8).unwrap()),
        Some(Decimal::ZERO)
    );
    let ltv = ltv::average_ltv(&l).unwrap();
    assert_eq!(crate::decimal::round(ltv, 2), d("1733.22"));
    let by_tier = ltv::ltv_by_tier(&l);
    assert_eq!(
        crate::decimal::round(by_tier["basic"].unwrap(), 2),
        d("1733.22")
    );
    assert_eq!(by_tier["trial"], Some(Decimal::ZERO));
}
