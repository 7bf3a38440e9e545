//! API keys, alert rules and the audit log.

use super::page;
use super::upsert::upsert;
use crate::db::{args, decimal_text, Conn, Row};
use crate::*;

const KEY_COLS: &str = "id, name, role, secret_hash, created_at, revoked_at";

fn api_key(r: &Row) -> StoreResult<ApiKey> {
    Ok(ApiKey {
        id: r.text(0)?,
        name: r.text(1)?,
        role: r.parsed(2, Role::parse)?,
        secret_hash: r.text(3)?,
        created_at: r.int(4)?,
        revoked_at: r.opt_int(5)?,
    })
}

/// Keys are created once: the same key again is fine, another key reusing its id or
/// secret is a `Conflict`.
pub(crate) async fn put_api_key(conn: &mut dyn Conn, k: &ApiKey) -> StoreResult<()> {
    let sql = format!(
        "INSERT INTO api_keys ({KEY_COLS}) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
    );
    let args = args![
        &k.id,
        &k.name,
        k.role.as_str(),
        &k.secret_hash,
        k.created_at,
        k.revoked_at
    ];
    if conn.exec(&sql, args).await? == 1 {
        return Ok(());
    }
    let stored = conn
        .row(
            &format!("SELECT {KEY_COLS} FROM api_keys WHERE id = $1"),
            args![&k.id],
        )
        .await?;
    match stored.as_ref().map(api_key).transpose()? {
        Some(stored) if stored == *k => Ok(()),
        _ => Err(StoreError::Conflict(format!(
            "an API key with id `{}` or the same secret already exists",
            k.id
        ))),
    }
}

pub(crate) async fn find_api_key(
    conn: &mut dyn Conn,
    secret_hash: &str,
) -> StoreResult<Option<ApiKey>> {
    let sql = format!("SELECT {KEY_COLS} FROM api_keys WHERE secret_hash = $1");
    conn.row(&sql, args![secret_hash])
        .await?
        .as_ref()
        .map(api_key)
        .transpose()
}

pub(crate) async fn list_api_keys(conn: &mut dyn Conn) -> StoreResult<Vec<ApiKey>> {
    let sql = format!("SELECT {KEY_COLS} FROM api_keys ORDER BY id");
    conn.rows(&sql, vec![]).await?.iter().map(api_key).collect()
}

/// Revoking again keeps the first revocation time.
pub(crate) async fn revoke_api_key(conn: &mut dyn Conn, id: &str, at: Micros) -> StoreResult<()> {
    let sql = "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1";
    if conn.exec(sql, args![id, at]).await? == 0 {
        return Err(StoreError::NotFound {
            kind: "API key",
            id: id.to_owned(),
        });
    }
    Ok(())
}

const RULE_COLS: &str = "metric, direction, critical, warning, info, enabled";

fn alert_rule(r: &Row) -> StoreResult<AlertRule> {
    Ok(AlertRule {
        metric: r.text(0)?,
        direction: r.parsed(1, Direction::parse)?,
        critical: r.decimal(2)?,
        warning: r.decimal(3)?,
        info: r.opt_decimal(4)?,
        enabled: r.bool(5)?,
    })
}

pub(crate) async fn list_alert_rules(conn: &mut dyn Conn) -> StoreResult<Vec<AlertRule>> {
    let sql = format!("SELECT {RULE_COLS} FROM alert_rules ORDER BY metric");
    conn.rows(&sql, vec![])
        .await?
        .iter()
        .map(alert_rule)
        .collect()
}

pub(crate) async fn put_alert_rule(
    conn: &mut dyn Conn,
    r: &AlertRule,
) -> StoreResult<WriteOutcome> {
    let args = args![
        &r.metric,
        r.direction.as_str(),
        decimal_text(&r.critical),
        decimal_text(&r.warning),
        r.info.as_ref().map(decimal_text),
        r.enabled
    ];
    upsert(
        conn,
        "alert_rules",
        &["metric"],
        &["direction", "critical", "warning", "info", "enabled"],
        args,
    )
    .await
}

pub(crate) async fn delete_alert_rule(conn: &mut dyn Conn, metric: &str) -> StoreResult<()> {
    if conn
        .exec("DELETE FROM alert_rules WHERE metric = $1", args![metric])
        .await?
        == 0
    {
        return Err(StoreError::NotFound {
            kind: "alert rule",
            id: metric.to_owned(),
        });
    }
    Ok(())
}

const AUDIT_COLS: &str = "id, at, key_id, method, route, status, client";

fn audit_entry(r: &Row) -> StoreResult<AuditEntry> {
    let status = r.int(5)?;
    Ok(AuditEntry {
        id: r.int(0)?,
        at: r.int(1)?,
        key_id: r.opt_text(2)?,
        method: r.text(3)?,
        route: r.text(4)?,
        status: u16::try_from(status).map_err(|_| {
            StoreError::Database(sqlx::Error::Decode(format!("status {status}").into()))
        })?,
        client: r.opt_text(6)?,
    })
}

pub(crate) async fn append_audit(conn: &mut dyn Conn, e: &AuditEntry) -> StoreResult<()> {
    let sql = "INSERT INTO audit_log (at, key_id, method, route, status, client) VALUES ($1, $2, $3, $4, $5, $6)";
    conn.exec(
        sql,
        args![
            e.at,
            &e.key_id,
            &e.method,
            &e.route,
            i64::from(e.status),
            &e.client
        ],
    )
    .await?;
    Ok(())
}

/// Newest first; the cursor is the last id shown.
pub(crate) async fn list_audit(
    conn: &mut dyn Conn,
    p: &PageRequest,
) -> StoreResult<Page<AuditEntry>> {
    let limit = page::limit(p);
    let fetch = i64::from(limit) + 1;
    let rows = match page::after(p)? {
        None => {
            let sql = format!("SELECT {AUDIT_COLS} FROM audit_log ORDER BY id DESC LIMIT $1");
            conn.rows(&sql, args![fetch]).await?
        }
        Some(after) => {
            let before: i64 = after.parse().map_err(|_| StoreError::BadCursor)?;
            let sql = format!(
                "SELECT {AUDIT_COLS} FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2"
            );
            conn.rows(&sql, args![before, fetch]).await?
        }
    };
    let mut items = rows
        .iter()
        .map(audit_entry)
        .collect::<StoreResult<Vec<_>>>()?;
    let next_cursor = page::finish(&mut items, limit, |e| encode_cursor(&e.id.to_string()));
    Ok(Page { items, next_cursor })
}
