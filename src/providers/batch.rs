//! Batch quote requests: which symbols a failure left unanswered, decided
//! in one place for every provider.

use std::collections::HashSet;

use super::bar::Quotes;
use super::error::ProviderError;

/// Ends a batch quote request after a failure that stopped a whole batch
/// (a 429, a timeout): `Err` when nothing was answered yet, so the caller
/// sees one clear error; otherwise the quotes in hand are kept and every
/// symbol of `asked` not yet answered (quoted or missing) is listed as
/// missing with that error.
pub(crate) fn batch_failure(
    mut out: Quotes,
    asked: &[String],
    error: ProviderError,
) -> Result<Quotes, ProviderError> {
    if out.quotes.is_empty() && out.missing.is_empty() {
        return Err(error);
    }
    let answered: HashSet<&str> = out
        .quotes
        .iter()
        .map(|q| q.symbol.as_str())
        .chain(out.missing.iter().map(ProviderError::symbol))
        .collect();
    let unanswered: Vec<ProviderError> = asked
        .iter()
        .filter(|symbol| !answered.contains(symbol.as_str()))
        .map(|symbol| error.with_symbol(symbol))
        .collect();
    out.missing.extend(unanswered);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use rust_decimal::Decimal;

    use super::*;
    use crate::providers::bar::Quote;
    use crate::providers::error::ErrorContext;
    use crate::providers::kind::ProviderKind;

    #[test]
    fn only_unanswered_symbols_carry_the_batch_error() {
        let symbols: Vec<String> = ["A", "B", "C", "D"].map(str::to_owned).to_vec();
        let ctx = ErrorContext::new(ProviderKind::Yahoo, "A,B,C,D");
        let error = ctx.rate_limited(None, "HTTP 429");
        assert_eq!(
            batch_failure(Quotes::default(), &symbols, error.clone()).unwrap_err(),
            error,
            "nothing answered: one clear error"
        );
        let mut out = Quotes::default();
        out.quotes.push(Quote {
            symbol: "A".to_owned(),
            price: Decimal::ONE,
            currency: None,
            ts: Utc::now(),
        });
        out.missing
            .push(ErrorContext::new(ProviderKind::Yahoo, "C").not_found("x"));
        let out = batch_failure(out, &symbols, error).unwrap();
        let missing: Vec<&str> = out.missing.iter().map(ProviderError::symbol).collect();
        assert_eq!(missing, ["C", "B", "D"]);
    }
}
