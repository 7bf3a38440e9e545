//! Customers and their invoices.

use super::write_status;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, Query};
use crate::state::AppState;
use crate::views::*;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use tally_core::input::{CustomerInput, InvoiceInput};

/// Create or update a customer.
#[utoipa::path(put, path = "/api/v1/customers/{id}", tag = "entities", request_body = CustomerInput,
    params(("id" = String, Path)),
    responses((status = 201, body = CustomerView), (status = 200, body = CustomerView), (status = 422, body = ErrorBody)))]
pub async fn put_customer(
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<CustomerInput>,
) -> ApiResult<(StatusCode, Json<CustomerView>)> {
    let customer = body.validate(&id)?;
    let outcome = s.store.put_customer(&customer).await?;
    Ok((write_status(outcome), Json(customer.into())))
}

/// One customer.
#[utoipa::path(get, path = "/api/v1/customers/{id}", tag = "entities", params(("id" = String, Path)),
    responses((status = 200, body = CustomerView), (status = 404, body = ErrorBody)))]
pub async fn get_customer(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<CustomerView>> {
    let c = s
        .store
        .get_customer(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("customer `{id}` does not exist")))?;
    Ok(Json(c.into()))
}

/// Customers in id order.
#[utoipa::path(get, path = "/api/v1/customers", tag = "entities", params(ListParams),
    responses((status = 200, body = ListPage<CustomerView>), (status = 422, body = ErrorBody)))]
pub async fn list_customers(
    State(s): State<AppState>,
    Query(q): Query<ListParams>,
) -> ApiResult<Json<ListPage<CustomerView>>> {
    let page = s.store.list_customers(&q.page()?).await?;
    Ok(Json(ListPage::map(page, Into::into)))
}

/// Create or update an invoice (its status may move on).
#[utoipa::path(put, path = "/api/v1/invoices/{id}", tag = "entities", request_body = InvoiceInput,
    params(("id" = String, Path)),
    responses((status = 201, body = InvoiceView), (status = 200, body = InvoiceView), (status = 422, body = ErrorBody)))]
pub async fn put_invoice(
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<InvoiceInput>,
) -> ApiResult<(StatusCode, Json<InvoiceView>)> {
    let invoice = body.validate(&id, &s.money)?;
    let outcome = s.store.put_invoice(&invoice).await?;
    Ok((
        write_status(outcome),
        Json(InvoiceView::new(invoice, s.money.reporting)),
    ))
}

/// One invoice.
#[utoipa::path(get, path = "/api/v1/invoices/{id}", tag = "entities", params(("id" = String, Path)),
    responses((status = 200, body = InvoiceView), (status = 404, body = ErrorBody)))]
pub async fn get_invoice(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<InvoiceView>> {
    let i = s
        .store
        .get_invoice(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("invoice `{id}` does not exist")))?;
    Ok(Json(InvoiceView::new(i, s.money.reporting)))
}

/// Invoices in id order.
#[utoipa::path(get, path = "/api/v1/invoices", tag = "entities", params(ListParams),
    responses((status = 200, body = ListPage<InvoiceView>), (status = 422, body = ErrorBody)))]
pub async fn list_invoices(
    State(s): State<AppState>,
    Query(q): Query<ListParams>,
) -> ApiResult<Json<ListPage<InvoiceView>>> {
    let page = s.store.list_invoices(&q.page()?).await?;
    let c = s.money.reporting;
    Ok(Json(ListPage::map(page, |i| InvoiceView::new(i, c))))
}
