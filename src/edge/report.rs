//! The startup report on stdout (reference §1.3, §10.3): the original's title, config lines,
//! one `✓ / ✗ / ⚠ <Step> (<detail>)` line per step with its explanatory lines, and
//! `All startup checks passed.` or `Startup checks completed with warnings.`.
//!
//! The original ran its steps one after another before doing anything else; ours run at once
//! on their own threads (drivers start from the cached backend answer before the token is
//! checked). So each step is filled in when its outcome is known, lines are printed in the
//! original's order as soon as every step before them is known, and times are since start.
//! Where we differ on purpose (an offline boot from the cache) the report says so in a line
//! of its own, and a step still unknown after [`PATIENCE`] is printed as pending rather than
//! holding the report back for ever.

use std::io::Write;
use std::time::{Duration, Instant};

/// How long the report waits for a step before printing it as pending.
pub const PATIENCE: Duration = Duration::from_secs(180);
/// The MQTT check's allowance (the original's three connect attempts).
pub const MQTT_ALLOWANCE: Duration = Duration::from_secs(15);

/// The steps, in the original's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Credentials,
    Token,
    Mqtt,
    Registration,
    HostFacts,
    Environment,
    Fingerprint,
    Heartbeat,
    Zenoh,
    Router,
    Drivers,
    WorkerSync,
}

const STEPS: [Step; 12] = [
    Step::Credentials,
    Step::Token,
    Step::Mqtt,
    Step::Registration,
    Step::HostFacts,
    Step::Environment,
    Step::Fingerprint,
    Step::Heartbeat,
    Step::Zenoh,
    Step::Router,
    Step::Drivers,
    Step::WorkerSync,
];

impl Step {
    fn title(self) -> &'static str {
        match self {
            Step::Credentials => "Credentials",
            Step::Token => "Token",
            Step::Mqtt => "MQTT broker",
            Step::Registration => "Edge registration",
            Step::HostFacts => "Host facts",
            Step::Environment => "Environment",
            Step::Fingerprint => "Edge fingerprint",
            Step::Heartbeat => "Edge heartbeat",
            Step::Zenoh => "Zenoh",
            Step::Router => "Zenoh router",
            Step::Drivers => "Twin drivers",
            Step::WorkerSync => "Worker sync",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Ok,
    Failed,
    Warning,
}

impl Mark {
    fn glyph(self) -> &'static str {
        match self {
            Mark::Ok => "✓",
            Mark::Failed => "✗",
            Mark::Warning => "⚠",
        }
    }
}

/// One step's outcome: no lines at all (skipped), or its line and what follows it.
#[derive(Debug, Clone, PartialEq)]
enum Slot {
    Open,
    Filled { lines: Vec<String>, warns: bool },
}

/// The report: what is known of each step, and how much of it is out.
#[derive(Debug)]
pub struct StartupReport {
    started: Instant,
    slots: Vec<Slot>,
    printed: usize,
    warnings: bool,
    finished: bool,
}

impl StartupReport {
    /// A report whose times count from `started`; returns it with its header lines.
    pub fn new(
        started: Instant,
        config_dir: &str,
        base_url: &str,
        environment: &str,
    ) -> (Self, Vec<String>) {
        let header = vec![
            String::new(),
            "Cyberwave Edge Core — Startup Checks".to_string(),
            String::new(),
            format!("  Config dir:  {config_dir}"),
            format!("  Base URL:    {base_url}"),
            format!("  Environment: {environment}"),
            String::new(),
        ];
        let report = StartupReport {
            started,
            slots: vec![Slot::Open; STEPS.len()],
            printed: 0,
            warnings: false,
            finished: false,
        };
        (report, header)
    }

    fn slot(&mut self, step: Step) -> Option<&mut Slot> {
        let i = STEPS.iter().position(|s| *s == step)?;
        self.slots.get_mut(i)
    }

    pub fn is_open(&self, step: Step) -> bool {
        STEPS
            .iter()
            .position(|s| *s == step)
            .and_then(|i| self.slots.get(i))
            .is_some_and(|s| *s == Slot::Open)
    }

    /// Seconds since start, as the original prints a step's time.
    pub fn secs(&self, now: Instant) -> String {
        format!(
            "{:.3}s",
            now.saturating_duration_since(self.started).as_secs_f64()
        )
    }

    /// Fills `step` once (later outcomes of the same step are not the start-up's): its line
    /// `  <mark> <title>[ (<detail>)]` and `extra` lines after it. A failure or warning
    /// makes the report end "with warnings".
    pub fn fill(&mut self, step: Step, mark: Mark, detail: Option<&str>, extra: Vec<String>) {
        self.fill_warning(step, mark, detail, extra, mark != Mark::Ok);
    }

    /// [`StartupReport::fill`], saying whether the step counts as a warning (the original
    /// marks partly started drivers ✓, and zenoh diagnostics under a ✓, yet warns).
    pub fn fill_warning(
        &mut self,
        step: Step,
        mark: Mark,
        detail: Option<&str>,
        extra: Vec<String>,
        warns: bool,
    ) {
        let Some(slot) = self.slot(step) else { return };
        if *slot != Slot::Open {
            return;
        }
        let mut line = format!("  {} {}", mark.glyph(), step.title());
        if let Some(d) = detail {
            line.push_str(&format!(" ({d})"));
        }
        let mut lines = vec![line];
        lines.extend(extra);
        *slot = Slot::Filled { lines, warns };
    }

    /// A step with no line of its own (the original prints none: a fingerprint that was
    /// found, a router that is not enabled, steps after a missing environment).
    pub fn skip(&mut self, step: Step) {
        if let Some(slot) = self.slot(step)
            && *slot == Slot::Open
        {
            *slot = Slot::Filled {
                lines: Vec::new(),
                warns: false,
            };
        }
    }

    /// Steps still open after [`PATIENCE`] are printed as pending (they go on in the
    /// background); the MQTT check fails after [`MQTT_ALLOWANCE`].
    pub fn check_time(&mut self, now: Instant) {
        let waited = now.saturating_duration_since(self.started);
        if waited >= MQTT_ALLOWANCE && self.is_open(Step::Mqtt) {
            let t = self.secs(now);
            self.fill(
                Step::Mqtt,
                Mark::Failed,
                Some(&t),
                vec![
                    "  Could not connect to the MQTT broker.".into(),
                    "  Check network connectivity and MQTT configuration.".into(),
                ],
            );
        }
        if waited >= PATIENCE {
            let t = self.secs(now);
            for step in STEPS {
                if self.is_open(step) {
                    let detail = format!("still pending after {t}; carried on in the background");
                    self.fill(step, Mark::Warning, Some(&detail), Vec::new());
                }
            }
        }
    }

    /// The lines now ready: every filled step after the last printed one, in order, and the
    /// closing line once every step is known. Each line is handed out once.
    pub fn take_ready(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(Slot::Filled { lines, warns }) = self.slots.get(self.printed) {
            out.extend(lines.iter().cloned());
            self.warnings |= *warns;
            self.printed += 1;
        }
        if self.printed == self.slots.len() && !self.finished {
            self.finished = true;
            out.push(String::new());
            out.push(if self.warnings {
                "Startup checks completed with warnings.".into()
            } else {
                "All startup checks passed.".into()
            });
            out.push(String::new());
        }
        out
    }

    pub fn finished(&self) -> bool {
        self.finished
    }
}

/// Prints lines on stdout; a closed stdout is not an error.
pub fn print(lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    for l in lines {
        let _ = writeln!(out, "{l}");
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_out_in_the_originals_order_once_known() {
        let t0 = Instant::now();
        let (mut r, header) = StartupReport::new(t0, "/c", "https://api", "production");
        assert_eq!(
            header,
            [
                "",
                "Cyberwave Edge Core — Startup Checks",
                "",
                "  Config dir:  /c",
                "  Base URL:    https://api",
                "  Environment: production",
                ""
            ]
        );
        r.fill(Step::Credentials, Mark::Ok, Some("0.001s"), vec![]);
        r.fill(Step::Mqtt, Mark::Ok, Some("0.020s"), vec![]);
        // The token is not known yet: only the credentials line is out.
        assert_eq!(r.take_ready(), ["  ✓ Credentials (0.001s)"]);
        r.fill(Step::Token, Mark::Ok, Some("0.412s"), vec![]);
        r.fill(Step::Token, Mark::Failed, Some("9.000s"), vec![]); // once only
        assert_eq!(
            r.take_ready(),
            ["  ✓ Token (0.412s)", "  ✓ MQTT broker (0.020s)"]
        );
        r.fill(Step::Registration, Mark::Ok, Some("0.5s"), vec![]);
        r.fill(Step::HostFacts, Mark::Ok, Some("0.6s"), vec![]);
        r.fill(Step::Environment, Mark::Ok, Some("e-uuid, 0.001s"), vec![]);
        r.skip(Step::Fingerprint);
        r.fill(Step::Heartbeat, Mark::Ok, Some("2 twin(s), 0.7s"), vec![]);
        r.fill(Step::Zenoh, Mark::Ok, Some("peer-to-peer"), vec![]);
        r.skip(Step::Router);
        r.fill(
            Step::Drivers,
            Mark::Ok,
            Some("1/1, 3.000s"),
            vec!["    arm → repo/arm:1 ✓".into()],
        );
        assert!(!r.finished());
        r.fill(
            Step::WorkerSync,
            Mark::Ok,
            Some("written=1, removed=0, 0.1s"),
            vec![],
        );
        let tail = r.take_ready();
        assert_eq!(
            tail.last().map(String::as_str),
            Some(""),
            "a trailing blank line"
        );
        assert!(tail.contains(&"All startup checks passed.".to_string()));
        assert!(tail.contains(&"    arm → repo/arm:1 ✓".to_string()));
        assert!(r.finished());
        assert!(r.take_ready().is_empty());
    }

    #[test]
    fn warnings_and_patience() {
        let t0 = Instant::now();
        let (mut r, _) = StartupReport::new(t0, "/c", "u", "dev");
        r.fill(Step::Credentials, Mark::Ok, Some("0.001s"), vec![]);
        r.check_time(t0 + MQTT_ALLOWANCE);
        r.fill(Step::Mqtt, Mark::Ok, Some("late"), vec![]); // too late: the failure stands
        r.check_time(t0 + PATIENCE);
        let all = r.take_ready();
        assert!(
            all.contains(&"  ✗ MQTT broker (15.000s)".to_string()),
            "{all:?}"
        );
        assert!(all.contains(&"  Could not connect to the MQTT broker.".to_string()));
        assert!(
            all.iter()
                .any(|l| l.starts_with("  ⚠ Token (still pending after 180.000s")),
            "{all:?}"
        );
        assert_eq!(
            all[all.len() - 2],
            "Startup checks completed with warnings."
        );
    }
}
