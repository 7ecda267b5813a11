//! Logs: Cloud Logging structured JSON lines (`LOG_FORMAT=json`) or readable text.
//!
//! In JSON, each line carries `severity`, `message`, the event's fields and those of its
//! spans (`request_id`, `message_id`, `stage`, `operation`), and
//! `logging.googleapis.com/trace` when the delivery carried a trace context.
//!
//! - [`events`]: the log lines Terraform's log-based metrics count, one type each.

pub(crate) mod events;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber, span};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::contract::rfc3339;

/// `LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Cloud Logging structured JSON lines.
    Json,
    /// Human-readable lines.
    Text,
}

/// Where log lines go; tests pass a buffer to read or silence them.
pub type Sink = Arc<Mutex<dyn Write + Send>>;

/// Installs the global subscriber. `project` names the trace resource in JSON lines.
pub fn init(format: LogFormat, project: &str, sink: Sink) {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry.with(CloudLogging::new(project, sink)).try_init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(move || SinkWriter(sink.clone()))
                    .with_ansi(false),
            )
            .try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}

/// Writes to stderr.
pub fn stderr() -> Sink {
    Arc::new(Mutex::new(std::io::stderr()))
}

struct SinkWriter(Sink);

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .flush()
    }
}

/// The JSON layer.
pub struct CloudLogging {
    project: String,
    sink: Sink,
}

impl CloudLogging {
    pub fn new(project: &str, sink: Sink) -> Self {
        Self {
            project: project.to_owned(),
            sink,
        }
    }
}

#[derive(Default)]
struct Fields(BTreeMap<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        self.0.insert(f.name().to_owned(), json!(format!("{v:?}")));
    }
    fn record_str(&mut self, f: &Field, v: &str) {
        self.0.insert(f.name().to_owned(), json!(v));
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.0.insert(f.name().to_owned(), json!(v));
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.0.insert(f.name().to_owned(), json!(v));
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.0.insert(f.name().to_owned(), json!(v));
    }
}

fn severity(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        _ => "DEBUG",
    }
}

impl<S> Layer<S> for CloudLogging
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut f = Fields::default();
        attrs.record(&mut f);
        if let Some(s) = ctx.span(id) {
            s.extensions_mut().insert(f);
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        if let Some(s) = ctx.span(id) {
            let mut ext = s.extensions_mut();
            if let Some(f) = ext.get_mut::<Fields>() {
                values.record(f);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut out = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for s in scope.from_root() {
                if let Some(f) = s.extensions().get::<Fields>() {
                    out.extend(f.0.clone());
                }
            }
        }
        let mut f = Fields::default();
        event.record(&mut f);
        let message =
            f.0.remove("message")
                .unwrap_or(Value::String(String::new()));
        out.extend(f.0);
        if let Some(Value::String(t)) = out.remove("trace_id") {
            out.insert(
                "logging.googleapis.com/trace".into(),
                json!(format!("projects/{}/traces/{t}", self.project)),
            );
        }
        out.insert("severity".into(), json!(severity(event.metadata().level())));
        out.insert("message".into(), message);
        out.insert("target".into(), json!(event.metadata().target()));
        out.insert("time".into(), json!(rfc3339(chrono::Utc::now())));
        let mut line = serde_json::to_vec(&Value::Object(out)).unwrap_or_default();
        line.push(b'\n');
        if let Ok(mut w) = self.sink.lock() {
            let _ = w.write_all(&line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_carry_severity_message_span_fields_and_trace() {
        let buf: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
        let sink: Sink = buf.clone();
        let sub = tracing_subscriber::registry().with(CloudLogging::new("wp", sink));
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!(
                "delivery",
                stage = "request",
                request_id = tracing::field::Empty,
                message_id = "m1",
                operation = tracing::field::Empty,
                trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
            );
            let _g = span.enter();
            span.record("request_id", "r1");
            tracing::warn!(attempt = 2, "hello");
        });
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        let v: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["severity"], "WARNING");
        assert_eq!(v["message"], "hello");
        assert_eq!(v["request_id"], "r1");
        assert_eq!(v["message_id"], "m1");
        assert_eq!(v["stage"], "request");
        assert_eq!(v["attempt"], 2);
        assert_eq!(
            v["logging.googleapis.com/trace"],
            "projects/wp/traces/4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }
}
