//! Checks several routes make on their input the same way: the size of a
//! page, a value from a fixed set.

use crate::http::error::Problem;
use crate::service::FieldError;

/// Items per page when the caller names no `limit`.
const DEFAULT_PAGE: u32 = 50;

/// The `limit` query parameter, checked: 1 to `max`, 50 when absent.
pub fn page_limit(limit: Option<u32>, max: u32) -> Result<u32, Problem> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=max).contains(&limit) {
        return Err(Problem::invalid(
            "limit",
            format!("must be between 1 and {max}"),
        ));
    }
    Ok(limit)
}

/// `value` read by `parse`, or the error listing what `field` takes.
pub fn one_of<T>(
    field: &str,
    value: &str,
    parse: impl FnOnce(&str) -> Option<T>,
    choices: &str,
) -> Result<T, FieldError> {
    parse(value).ok_or_else(|| FieldError::new(field, format!("'{value}' is not one of {choices}")))
}
