//! What a caught panic said, for the log line or the reason that reports
//! it (a job body, an event being applied): panics are caught, never
//! allowed to take the process down.

use std::any::Any;

/// The message a panic was raised with, or "unknown panic".
pub fn message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
