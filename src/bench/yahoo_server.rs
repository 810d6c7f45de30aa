//! A local Yahoo for the benches: every chart request answered at once
//! with the same year of daily bars, arrivals optionally logged. Not
//! `local_http`: the answer is one prebuilt buffer written as is, so the
//! server costs the drain it measures as little as possible.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{Datelike, NaiveDate, Weekday};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::BenchError;

/// Daily bars in every answer.
pub const BARS: usize = 252;

/// When each request arrived, and when each refusal was sent.
#[derive(Debug, Default)]
pub struct RequestLog {
    arrivals: Mutex<Vec<Instant>>,
    refusals: Mutex<Vec<Instant>>,
}

impl RequestLog {
    fn note(&self) {
        self.arrivals
            .lock()
            .expect("request log")
            .push(Instant::now());
    }

    fn note_refusal(&self) {
        self.refusals
            .lock()
            .expect("request log")
            .push(Instant::now());
    }

    /// Arrivals so far, in order.
    pub fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().expect("request log").clone()
    }

    /// When each 429 was sent, in order.
    pub fn refusals(&self) -> Vec<Instant> {
        self.refusals.lock().expect("request log").clone()
    }
}

/// Yahoo's usual refusal: a 429 without Retry-After.
const REFUSAL: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain\r\n\
content-length: 19\r\n\r\nToo Many Requests\r\n";

/// A local HTTP/1.1 server answering every request at once with Yahoo's
/// chart for a NASDAQ stock: 252 daily bars ending late 2024. Returns its
/// base URL and the bar dates. With `log`, the arrival of every request is
/// noted there.
pub async fn serve_year(
    log: Option<Arc<RequestLog>>,
) -> Result<(url::Url, Vec<NaiveDate>), BenchError> {
    serve_year_refusing(log, None).await
}

/// [`serve_year`], answering every `refuse_every`-th request (counted over
/// all connections) with Yahoo's 429 instead.
pub async fn serve_year_refusing(
    log: Option<Arc<RequestLog>>,
    refuse_every: Option<u64>,
) -> Result<(url::Url, Vec<NaiveDate>), BenchError> {
    let served = Arc::new(AtomicU64::new(0));
    let days: Vec<NaiveDate> = NaiveDate::from_ymd_opt(2024, 1, 2)
        .expect("date")
        .iter_days()
        .filter(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
        .take(BARS)
        .collect();
    let body = yahoo_year(&days);
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let response: Arc<[u8]> = [head.as_bytes(), body.as_bytes()].concat().into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| BenchError::Stalled(format!("cannot start the local server: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| BenchError::Stalled(e.to_string()))?;
    let url = url::Url::parse(&format!("http://{addr}")).expect("local URL");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let response = response.clone();
            let log = log.clone();
            let served = served.clone();
            tokio::spawn(async move {
                let _ = socket.set_nodelay(true);
                let mut buf = vec![0u8; 8192];
                let mut filled = 0;
                loop {
                    match socket.read(&mut buf[filled..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => filled += n,
                    }
                    // GET requests carry no body: a blank line ends each one.
                    while let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                        if let Some(log) = &log {
                            log.note();
                        }
                        let n = served.fetch_add(1, Ordering::Relaxed) + 1;
                        let refuse = refuse_every.is_some_and(|every| n.is_multiple_of(every));
                        let answer: &[u8] = if refuse { REFUSAL } else { &response };
                        if socket.write_all(answer).await.is_err() {
                            return;
                        }
                        if let (true, Some(log)) = (refuse, &log) {
                            log.note_refusal();
                        }
                        buf.copy_within(end + 4..filled, 0);
                        filled -= end + 4;
                    }
                    if filled == buf.len() {
                        return;
                    }
                }
            });
        }
    });
    Ok((url, days))
}

fn yahoo_year(days: &[NaiveDate]) -> String {
    let ts: Vec<i64> = days
        .iter()
        .map(|d| {
            d.and_hms_opt(14, 30, 0)
                .expect("time")
                .and_utc()
                .timestamp()
        })
        .collect();
    let close: Vec<f64> = (0..days.len())
        .map(|i| f64::from(150.0_f32 + i as f32 * 0.37))
        .collect();
    let open: Vec<f64> = close.iter().map(|c| c - 0.5).collect();
    let high: Vec<f64> = close.iter().map(|c| c + 1.25).collect();
    let low: Vec<f64> = close.iter().map(|c| c - 1.25).collect();
    let volume: Vec<u64> = (0..days.len() as u64)
        .map(|i| 50_000_000 + i * 1_000)
        .collect();
    serde_json::json!({"chart": {"result": [{
        "meta": {"currency": "USD", "symbol": "BENCH", "exchangeName": "NMS",
                 "instrumentType": "EQUITY", "gmtoffset": -18000, "timezone": "EST",
                 "exchangeTimezoneName": "America/New_York", "dataGranularity": "1d"},
        "timestamp": ts,
        "indicators": {"quote": [{"open": open, "high": high, "low": low, "close": close,
                                  "volume": volume}],
                       "adjclose": [{"adjclose": close}]}
    }], "error": null}})
    .to_string()
}
