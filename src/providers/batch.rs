//! Batch quote requests: which symbols a failure left unanswered, decided
//! in one place for every provider.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use super::bar::Quotes;
use super::error::ProviderError;

/// One batch request of a provider: adds to the quotes what it learns, or
/// fails the way that stops the whole batch.
pub(crate) type AskBatch<P> =
    for<'a> fn(
        &'a P,
        &'a [String],
        &'a mut Quotes,
    ) -> Pin<Box<dyn Future<Output = Result<(), ProviderError>> + Send + 'a>>;

/// Asks `provider` for `symbols`, `size` at a time, through `ask`,
/// stopping at the first failure that stops a whole batch (see
/// [`batch_failure`]).
pub(crate) async fn in_batches<P: Sync>(
    provider: &P,
    symbols: &[String],
    size: usize,
    ask: AskBatch<P>,
) -> Result<Quotes, ProviderError> {
    let size = size.max(1);
    let mut out = Quotes::default();
    for (i, batch) in symbols.chunks(size).enumerate() {
        if let Err(e) = ask(provider, batch, &mut out).await {
            return batch_failure(out, &symbols[i * size..], e);
        }
    }
    Ok(out)
}

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
