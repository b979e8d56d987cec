//! [`AlertLog`]: the embedded default's [`AlertPublisher`], alerts as JSON lines.

use std::path::Path;

use flyhigh_core::{AlertPublisher, StoreError};
use flyhigh_schemas::Alert;

use crate::jsonl::{JsonLinesError, JsonLinesFile};

/// The console callback of an [`AlertLog`].
type Console = Box<dyn Fn(&str) + Send + Sync>;
type Observer = Box<dyn Fn(&Alert) + Send + Sync>;

/// An [`AlertPublisher`] for the embedded default: each alert becomes one line of a
/// JSON lines file (conventionally [`ALERTS_FILE`](crate::ALERTS_FILE)), exactly its
/// [`Alert::to_json`], handed to the operating system before `publish` returns; then,
/// if one was given, its [`Alert::console_line`] goes to the console callback.
///
/// The file is append-only. An alert published again after a crash between publish
/// and mark (see [`AlertStore`](flyhigh_core::AlertStore)) appears again, with the same `alert_id`, as an SNS
/// subscriber would receive it twice.
///
/// ```
/// use flyhigh_embedded::{ALERTS_FILE, AlertLog};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let log = AlertLog::new(dir.path().join(ALERTS_FILE))?.with_console(|line| println!("{line}"));
/// assert!(log.path().ends_with(ALERTS_FILE));
/// # Ok(())
/// # }
/// ```
pub struct AlertLog {
    file: JsonLinesFile,
    console: Option<Console>,
    observer: Option<Observer>,
}

impl AlertLog {
    /// Opens `path` for appending, creating it and its parent directories if missing;
    /// alerts already in it are kept. Nothing goes to the console.
    ///
    /// # Errors
    ///
    /// [`JsonLinesError::Io`] when the directory or the file cannot be created.
    pub fn new(path: impl AsRef<Path>) -> Result<Self, JsonLinesError> {
        Ok(AlertLog {
            file: JsonLinesFile::create(path)?,
            console: None,
            observer: None,
        })
    }

    /// Also passes each published alert's [`Alert::console_line`] to `console` (after
    /// the line is in the file).
    #[must_use]
    pub fn with_console(mut self, console: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.console = Some(Box::new(console));
        self
    }

    /// The file.
    /// Also tells `observer` of each alert once it is published (the live view,
    /// the alert latency).
    #[must_use]
    pub fn with_observer(mut self, observer: impl Fn(&Alert) + Send + Sync + 'static) -> Self {
        self.observer = Some(Box::new(observer));
        self
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

impl std::fmt::Debug for AlertLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertLog")
            .field("path", &self.path())
            .field("console", &self.console.is_some())
            .finish()
    }
}

impl AlertPublisher for AlertLog {
    /// # Errors
    ///
    /// [`StoreError::Transient`] when the line cannot be written (whatever the cause:
    /// the alert stays in the outbox and its next publish is the retry, so a full
    /// disk freed by an operator delays alerts and loses none).
    async fn publish(&self, alert: &Alert) -> Result<(), StoreError> {
        // `JsonLinesFile` writes `serde_json::to_writer(alert)`, the same compact
        // serialization as `Alert::to_json`, and cuts off a failed write.
        self.file
            .append(std::slice::from_ref(alert))
            .map_err(|e| StoreError::Transient(format!("publishing {:?}: {e}", alert.alert_id)))?;
        if let Some(console) = &self.console {
            console(&alert.console_line());
        }
        if let Some(observer) = &self.observer {
            observer(alert);
        }
        Ok(())
    }
}
