//! Alerts (endpoint 18) and the management of their rules (metrics.md "Alerts").

use super::composite::finance;
use super::{load_book, r2o};
use crate::analytics::params::{AsOfParam, Window};
use crate::analytics::usage::figures;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, Query};
use crate::routes::write_status;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tally_core::billing::churn::customer_churn_rate;
use tally_core::billing::ledger::Ledger;
use tally_core::time::Micros;
use tally_core::FieldError;
use tally_store::{AlertRule, Direction};
use utoipa::ToSchema;

/// The metrics a rule can watch, with what a person calls them.
const METRICS: &[(&str, &str)] = &[
    ("churn_rate", "Customer churn rate this month"),
    ("mrr_growth", "MRR growth against last month"),
    ("error_rate", "Error rate over the last 24 hours"),
    ("uptime", "Uptime over the last 24 hours"),
    ("payment_success_rate", "Payment success rate this month"),
    ("gross_margin", "Gross margin this month"),
];

fn accepted_metrics() -> String {
    METRICS
        .iter()
        .map(|(m, _)| *m)
        .collect::<Vec<_>>()
        .join(", ")
}

fn label(metric: &str) -> &'static str {
    METRICS
        .iter()
        .find(|(m, _)| *m == metric)
        .map_or("Metric", |(_, l)| l)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Severity {
    Critical,
    Warning,
    Info,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// A threshold is crossed when the value is strictly beyond it: above a threshold for
/// `above` rules, below it for `below` rules.
fn crossed(direction: Direction, value: Decimal, threshold: Decimal) -> bool {
    match direction {
        Direction::Above => value > threshold,
        Direction::Below => value < threshold,
    }
}

/// The most severe threshold the value crosses.
fn evaluate(rule: &AlertRule, value: Decimal) -> Option<(Severity, Decimal)> {
    [
        (Severity::Critical, Some(rule.critical)),
        (Severity::Warning, Some(rule.warning)),
        (Severity::Info, rule.info),
    ]
    .into_iter()
    .find_map(|(sev, th)| {
        th.filter(|&th| crossed(rule.direction, value, th))
            .map(|th| (sev, th))
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Alert {
    pub metric: String,
    /// The live value, rounded to 2 decimals (percent for every built-in metric).
    pub value: Decimal,
    /// The crossed threshold.
    pub threshold: Decimal,
    /// critical, warning or info.
    pub status: String,
    /// above or below.
    pub direction: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertsReport {
    pub critical_alerts: Vec<Alert>,
    pub warning_alerts: Vec<Alert>,
    pub info_alerts: Vec<Alert>,
    /// Enabled rules whose value is undefined (for example uptime without health checks).
    pub no_data: Vec<String>,
}

/// Live values of the watched metrics, rounded as every endpoint shows them.
async fn live_values(
    s: &AppState,
    as_of: Micros,
) -> ApiResult<Vec<(&'static str, Option<Decimal>)>> {
    let book = load_book(s).await?;
    let l = Ledger::new(&book, as_of);
    let f = finance(s, &l, as_of).await?;
    let day = Window::Day.span(as_of);
    Ok(vec![
        ("churn_rate", r2o(customer_churn_rate(&l, l.current))),
        ("mrr_growth", r2o(f.mom_growth)),
        ("error_rate", r2o(figures::error_rate(s, day).await?)),
        ("uptime", r2o(figures::uptime(s, day).await?)),
        ("payment_success_rate", r2o(f.success_rate())),
        ("gross_margin", r2o(f.gross_margin())),
    ])
}

/// Alerts of the enabled rules, by severity.
#[utoipa::path(get, path = "/api/v1/analytics/metrics/alerts", tag = "analytics", params(AsOfParam),
    responses((status = 200, body = AlertsReport), (status = 422, body = ErrorBody)))]
pub async fn alerts(
    State(s): State<AppState>,
    Query(a): Query<AsOfParam>,
) -> ApiResult<Json<AlertsReport>> {
    let as_of = a.resolve(&s)?;
    let values = live_values(&s, as_of).await?;
    let mut rules = s.store.list_alert_rules().await?;
    rules.sort_by(|a, b| a.metric.cmp(&b.metric));
    let mut report = AlertsReport {
        critical_alerts: Vec::new(),
        warning_alerts: Vec::new(),
        info_alerts: Vec::new(),
        no_data: Vec::new(),
    };
    for rule in rules.iter().filter(|r| r.enabled) {
        let Some(value) = values
            .iter()
            .find(|(m, _)| *m == rule.metric)
            .and_then(|(_, v)| *v)
        else {
            report.no_data.push(rule.metric.clone());
            continue;
        };
        let Some((sev, threshold)) = evaluate(rule, value) else {
            continue;
        };
        let message = format!(
            "{} is {value} %, {} the {} threshold of {} %.",
            label(&rule.metric),
            rule.direction.as_str(),
            sev.as_str(),
            threshold.normalize()
        );
        let alert = Alert {
            metric: rule.metric.clone(),
            value,
            threshold,
            status: sev.as_str().to_string(),
            direction: rule.direction.as_str().to_string(),
            message,
        };
        match sev {
            Severity::Critical => report.critical_alerts.push(alert),
            Severity::Warning => report.warning_alerts.push(alert),
            Severity::Info => report.info_alerts.push(alert),
        }
    }
    Ok(Json(report))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleView {
    pub metric: String,
    /// above or below: which way is bad.
    pub direction: String,
    pub critical: Decimal,
    pub warning: Decimal,
    pub info: Option<Decimal>,
    pub enabled: bool,
}

impl From<AlertRule> for RuleView {
    fn from(r: AlertRule) -> Self {
        RuleView {
            metric: r.metric,
            direction: r.direction.as_str().to_string(),
            critical: r.critical,
            warning: r.warning,
            info: r.info,
            enabled: r.enabled,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleList {
    pub rules: Vec<RuleView>,
}

/// The stored alert rules, by metric.
#[utoipa::path(get, path = "/api/v1/alert-rules", tag = "analytics",
    responses((status = 200, body = RuleList)))]
pub async fn list_rules(State(s): State<AppState>) -> ApiResult<Json<RuleList>> {
    let mut rules = s.store.list_alert_rules().await?;
    rules.sort_by(|a, b| a.metric.cmp(&b.metric));
    Ok(Json(RuleList {
        rules: rules.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    /// above or below.
    pub direction: String,
    #[serde(deserialize_with = "tally_core::decimal::de")]
    pub critical: Decimal,
    #[serde(deserialize_with = "tally_core::decimal::de")]
    pub warning: Decimal,
    #[serde(default, deserialize_with = "tally_core::decimal::de_opt")]
    pub info: Option<Decimal>,
    /// Default true.
    pub enabled: Option<bool>,
}

impl RuleInput {
    fn validate(self, metric: &str) -> Result<AlertRule, ApiError> {
        if !METRICS.iter().any(|(m, _)| *m == metric) {
            return Err(ApiError::invalid(
                "metric",
                format!(
                    "`{metric}` is not accepted; accepted values: {}",
                    accepted_metrics()
                ),
            ));
        }
        let direction = Direction::parse(&self.direction).ok_or_else(|| {
            ApiError::invalid(
                "direction",
                format!(
                    "`{}` is not accepted; accepted values: above, below",
                    self.direction
                ),
            )
        })?;
        // Severity grows in the bad direction: critical is beyond warning, warning beyond info.
        let ordered = |worse: Decimal, milder: Decimal| match direction {
            Direction::Above => worse >= milder,
            Direction::Below => worse <= milder,
        };
        let beyond = if direction == Direction::Above {
            "at least"
        } else {
            "at most"
        };
        if !ordered(self.critical, self.warning) {
            return Err(FieldError::new(
                "critical",
                format!(
                    "must be {beyond} warning ({}) for a rule `{}`",
                    self.warning,
                    direction.as_str()
                ),
            )
            .into());
        }
        if let Some(info) = self.info {
            if !ordered(self.warning, info) {
                return Err(FieldError::new(
                    "warning",
                    format!(
                        "must be {beyond} info ({info}) for a rule `{}`",
                        direction.as_str()
                    ),
                )
                .into());
            }
        }
        Ok(AlertRule {
            metric: metric.to_string(),
            direction,
            critical: self.critical,
            warning: self.warning,
            info: self.info,
            enabled: self.enabled.unwrap_or(true),
        })
    }
}

/// Create or replace the rule of a metric (admin).
#[utoipa::path(put, path = "/api/v1/alert-rules/{metric}", tag = "analytics", request_body = RuleInput,
    params(("metric" = String, Path, description = "churn_rate, mrr_growth, error_rate, uptime, payment_success_rate or gross_margin")),
    responses((status = 201, body = RuleView), (status = 200, body = RuleView), (status = 422, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn put_rule(
    State(s): State<AppState>,
    Path(metric): Path<String>,
    JsonBody(body): JsonBody<RuleInput>,
) -> ApiResult<(StatusCode, Json<RuleView>)> {
    let rule = body.validate(&metric)?;
    let outcome = s.store.put_alert_rule(&rule).await?;
    Ok((write_status(outcome), Json(rule.into())))
}

/// Delete the rule of a metric (admin).
#[utoipa::path(delete, path = "/api/v1/alert-rules/{metric}", tag = "analytics",
    params(("metric" = String, Path)),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn delete_rule(
    State(s): State<AppState>,
    Path(metric): Path<String>,
) -> ApiResult<StatusCode> {
    s.store.delete_alert_rule(&metric).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(direction: Direction, critical: i64, warning: i64, info: Option<i64>) -> AlertRule {
        AlertRule {
            metric: "m".into(),
            direction,
            critical: critical.into(),
            warning: warning.into(),
            info: info.map(Into::into),
            enabled: true,
        }
    }

    #[test]
    fn most_severe_crossed_threshold_wins() {
        let churn = rule(Direction::Above, 5, 4, Some(3));
        assert_eq!(
            evaluate(&churn, Decimal::new(52, 1)),
            Some((Severity::Critical, 5.into()))
        );
        assert_eq!(
            evaluate(&churn, Decimal::new(45, 1)),
            Some((Severity::Warning, 4.into()))
        );
        assert_eq!(
            evaluate(&churn, Decimal::new(35, 1)),
            Some((Severity::Info, 3.into()))
        );
        // Exactly at a threshold is not beyond it.
        assert_eq!(
            evaluate(&churn, 5.into()),
            Some((Severity::Warning, 4.into()))
        );
        assert_eq!(evaluate(&churn, 3.into()), None);
        let growth = rule(Direction::Below, -5, 0, None);
        assert_eq!(
            evaluate(&growth, Decimal::new(-61, 1)),
            Some((Severity::Critical, (-5).into()))
        );
        assert_eq!(
            evaluate(&growth, Decimal::new(-1, 1)),
            Some((Severity::Warning, 0.into()))
        );
        assert_eq!(evaluate(&growth, 0.into()), None);
    }
}
