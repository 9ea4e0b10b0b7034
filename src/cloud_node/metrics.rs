//! Invocation metrics per function (seed 002/003 function model): totals, success rate,
//! average and p95 latency, errors and timeouts.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};

/// Latencies kept per function for the p95 (a sliding window).
const WINDOW: usize = 1000;

#[derive(Debug, Default, Clone)]
pub struct FunctionStats {
    pub total: u64,
    pub ok: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub rejected: u64,
    total_ms: f64,
    recent_ms: VecDeque<f64>,
}

impl FunctionStats {
    pub fn record(&mut self, ok: bool, timed_out: bool, duration_ms: f64) {
        self.total += 1;
        if ok {
            self.ok += 1;
        } else {
            self.errors += 1;
        }
        if timed_out {
            self.timeouts += 1;
        }
        self.total_ms += duration_ms;
        if self.recent_ms.len() == WINDOW {
            self.recent_ms.pop_front();
        }
        self.recent_ms.push_back(duration_ms);
    }

    pub fn p95_ms(&self) -> Option<f64> {
        if self.recent_ms.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = self.recent_ms.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        let idx = ((v.len() as f64) * 0.95).ceil() as usize;
        Some(v[idx.saturating_sub(1).min(v.len() - 1)])
    }

    pub fn to_json(&self) -> Value {
        let avg = (self.total > 0).then(|| self.total_ms / self.total as f64);
        json!({
            "total": self.total,
            "ok": self.ok,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "rejected": self.rejected,
            "success_rate": (self.total > 0).then(|| self.ok as f64 / self.total as f64),
            "avg_ms": avg.map(|a| (a * 10.0).round() / 10.0),
            "p95_ms": self.p95_ms().map(|p| (p * 10.0).round() / 10.0),
        })
    }
}

#[derive(Debug, Default, Clone)]
pub struct Metrics {
    pub by_function: BTreeMap<&'static str, FunctionStats>,
}

impl Metrics {
    pub fn entry(&mut self, f: &'static str) -> &mut FunctionStats {
        self.by_function.entry(f).or_default()
    }

    pub fn to_json(&self) -> Value {
        Value::Object(
            self.by_function
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_json()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats() {
        let mut s = FunctionStats::default();
        for i in 1..=100 {
            s.record(i % 10 != 0, i == 100, i as f64);
        }
        let j = s.to_json();
        assert_eq!(j["total"], json!(100));
        assert_eq!(j["errors"], json!(10));
        assert_eq!(j["timeouts"], json!(1));
        assert_eq!(j["success_rate"], json!(0.9));
        assert_eq!(j["avg_ms"], json!(50.5));
        assert_eq!(j["p95_ms"], json!(95.0));
        assert_eq!(FunctionStats::default().to_json()["p95_ms"], Value::Null);
    }
}
