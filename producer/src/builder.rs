//! [`ProducerBuilder`], the front door: every setting by name, all of them checked
//! by `build`, and with Kinesis the stream itself checked (it exists, takes writes,
//! the credentials may describe it) before the producer starts. A wrong stream name
//! is one [`BuildError`] at start-up instead of every record dead-lettered later.
//!
//! With [`kinesis`](ProducerBuilder::kinesis) the builder also makes the SDK client,
//! with the SDK's retries off: the producer retries each record itself, with
//! per-shard backoff, and two retry layers multiply under throttling.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigError, ProducerConfig};
use crate::dead_letter::{DeadLetterSink, FileDeadLetters};
use crate::producer::Producer;
use crate::rate::ShardLimits;
use crate::transport::{Transport, TransportError};

/// Why [`ProducerBuilder::build`] or [`ProducerBuilder::build_with`] did not start
/// a producer. Each says what to fix; nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting is out of range ([`ProducerConfig::validate`]), or the stream name
    /// breaks Kinesis's naming rules (setting `stream`).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `kinesis(..)` or `kinesis_client(..)` without `stream(..)`.
    #[error("no Kinesis stream named: call .stream(name) on the producer builder")]
    MissingStream,
    /// `build()` with neither `kinesis(..)` nor `kinesis_client(..)`.
    #[error(
        "no Kinesis client: call .kinesis(&sdk_config) or .kinesis_client(client) before .build(), or use .build_with(transport)"
    )]
    MissingTransport,
    /// DescribeStreamSummary says there is no such stream.
    #[error(
        "Kinesis stream {stream} does not exist in this account and region: check the stream name and the region (AWS_REGION), or create the stream"
    )]
    StreamNotFound {
        /// The stream asked for.
        stream: String,
    },
    /// The stream exists but takes no writes (`CREATING`, `DELETING`).
    #[error(
        "Kinesis stream {stream} is {status} and takes no writes: start the producer once it is ACTIVE"
    )]
    StreamNotWritable {
        /// The stream.
        stream: String,
        /// Its status, as Kinesis spells it.
        status: String,
    },
    /// The credentials may not describe the stream (and most likely may not write
    /// to it either).
    #[error(
        "access to Kinesis stream {stream} denied ({message}): the credentials need {action}, and kinesis:PutRecords and kinesis:ListShards to produce"
    )]
    AccessDenied {
        /// The stream.
        stream: String,
        /// The IAM action refused, e.g. `kinesis:DescribeStreamSummary`.
        action: &'static str,
        /// The service's code and message.
        message: String,
    },
    /// Kinesis did not answer, or answered with an error that is none of the above
    /// (no credentials, connection refused, 5xx, throttled on every attempt...).
    #[error(
        "cannot check Kinesis stream {stream}: {message}; try again, and if it persists check the endpoint, region, credentials and network"
    )]
    Unreachable {
        /// The stream.
        stream: String,
        /// What failed and why, on one line.
        message: String,
    },
    /// [`ProducerBuilder::build_with`]: the transport's first ListShards failed or
    /// did not answer within [`ProducerConfig::request_timeout`].
    #[error("the transport cannot list the stream's shards ({0}): check its stream and endpoint")]
    Transport(TransportError),
    /// The dead-letter sink cannot store letters ([`DeadLetterSink::check`]): an
    /// unwritable directory, a queue that does not exist.
    #[error("{0}")]
    DeadLetters(String),
}

/// Longest Kinesis stream name.
#[cfg(feature = "kinesis")]
const MAX_STREAM_NAME_CHARS: usize = 128;

/// Builds a [`Producer`]: start with [`Producer::builder`], change the settings that
/// differ from [`ProducerConfig::default`], then [`build`](ProducerBuilder::build)
/// (Kinesis) or [`build_with`](ProducerBuilder::build_with) (any [`Transport`]).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use flyhigh_producer::{LocalStream, MemoryDeadLetters, Producer};
///
/// let producer = Producer::builder()
///     .linger(Duration::from_millis(20))
///     .record_ttl(Duration::from_secs(60))
///     .dead_letters(MemoryDeadLetters::new())
///     .build_with(LocalStream::new("bookings", 4))
///     .await?;
/// producer.send_record("FH0123-20261201", b"{}".to_vec()).await?;
/// assert_eq!(producer.close().await.records_written, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Default)]
#[must_use = "a ProducerBuilder starts nothing until .build() or .build_with(..)"]
pub struct ProducerBuilder {
    config: ProducerConfig,
    #[cfg(feature = "kinesis")]
    stream: Option<String>,
    #[cfg(feature = "kinesis")]
    client: Option<aws_sdk_kinesis::Client>,
}

/// One setter per plain [`ProducerConfig`] field, named as the field.
macro_rules! setters {
    ($($field:ident: $ty:ty, $default:literal;)*) => {$(
        #[doc = concat!(
            "Sets [`ProducerConfig::", stringify!($field), "`] (default ", $default, ")."
        )]
        pub fn $field(mut self, value: $ty) -> Self {
            self.config.$field = value;
            self
        }
    )*};
}

impl ProducerBuilder {
    /// Replaces every setting with `config`'s (the Kinesis ones, `stream` and the
    /// client, are kept): for settings loaded from elsewhere. Setters called after
    /// it change single fields of it.
    pub fn config(mut self, config: ProducerConfig) -> Self {
        self.config = config;
        self
    }

    setters! {
        buffer_budget_bytes: usize, "32 MiB";
        linger: Duration, "50 ms";
        aggregation: bool, "on";
        aggregate_max_bytes: usize, "51,200";
        record_ttl: Duration, "120 s";
        backoff_base: Duration, "100 ms";
        backoff_max: Duration, "5 s";
        max_requests_in_flight: usize, "8";
        request_timeout: Duration, "30 s";
        shard_map_refresh: Duration, "60 s";
        shard_budget_share: f64, "0.5";
    }

    /// Sets [`ProducerConfig::metrics_emf_namespace`]: the metrics are also printed
    /// to stdout as CloudWatch Embedded Metric Format lines in this namespace
    /// (default off).
    pub fn metrics_emf_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.config.metrics_emf_namespace = Some(namespace.into());
        self
    }

    /// Sets [`ProducerConfig::shard_limits`] (default `None`: the transport's).
    pub fn shard_limits(mut self, limits: impl Into<Option<ShardLimits>>) -> Self {
        self.config.shard_limits = limits.into();
        self
    }

    /// Sets [`ProducerConfig::metrics_interval`] (default 60 s); `None` turns the
    /// periodic metrics event off.
    pub fn metrics_interval(mut self, interval: impl Into<Option<Duration>>) -> Self {
        self.config.metrics_interval = interval.into();
        self
    }

    /// Sets [`ProducerConfig::rng_seed`] (default `None`: seeded from the OS).
    pub fn rng_seed(mut self, seed: impl Into<Option<u64>>) -> Self {
        self.config.rng_seed = seed.into();
        self
    }

    /// Sets [`ProducerConfig::dead_letters`] (default a [`FileDeadLetters`] in
    /// [`FileDeadLetters::default_location`]). The build checks it can store
    /// letters ([`DeadLetterSink::check`]).
    pub fn dead_letters(mut self, sink: impl DeadLetterSink) -> Self {
        self.config.dead_letters = Arc::new(sink);
        self
    }

    /// Dead letters appended as JSON lines to `path` ([`FileDeadLetters`]; the file
    /// is created on the first letter, its directory must exist).
    pub fn dead_letters_file(self, path: impl Into<PathBuf>) -> Self {
        self.dead_letters(FileDeadLetters::new(path))
    }

    /// Validates the settings, lists the transport's shards once (bounded by
    /// [`ProducerConfig::request_timeout`]) to see that it answers, then starts the
    /// producer on the current Tokio runtime: for [`LocalStream`](crate::LocalStream)
    /// and custom transports. The Kinesis settings (`stream`, `kinesis`,
    /// `kinesis_client`) are not used.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use flyhigh_producer::{BuildError, LocalStream, Producer};
    ///
    /// let refused = Producer::builder()
    ///     .backoff_base(Duration::ZERO)
    ///     .build_with(LocalStream::new("bookings", 1))
    ///     .await;
    /// assert!(matches!(refused, Err(BuildError::Config(e)) if e.setting == "backoff_base"));
    /// # });
    /// ```
    pub async fn build_with<T: Transport>(self, transport: T) -> Result<Producer, BuildError> {
        self.config.validate()?;
        check_dead_letters(&self.config).await?;
        let timeout = self.config.request_timeout;
        match tokio::time::timeout(timeout, transport.list_shards()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(BuildError::Transport(e)),
            Err(_) => {
                return Err(BuildError::Transport(TransportError::Transient(format!(
                    "ListShards did not answer within {timeout:?} (request_timeout)"
                ))));
            }
        }
        Ok(Producer::try_new(transport, self.config)?)
    }
}

#[cfg(feature = "kinesis")]
impl ProducerBuilder {
    /// The Kinesis stream to write to, by name.
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.stream = Some(name.into());
        self
    }

    /// Writes through a Kinesis client made from `sdk` (region, credentials,
    /// endpoint and timeouts are its), with the SDK's retries off.
    pub fn kinesis(mut self, sdk: &aws_config::SdkConfig) -> Self {
        self.client = Some(crate::kinesis::client_without_sdk_retries(sdk));
        self
    }

    /// Writes through an already built Kinesis client. Its retries should be off
    /// (`RetryConfig::disabled()`): the producer retries each record itself with
    /// per-shard backoff, and SDK retries under it multiply the requests a
    /// throttled stream gets. This turns them off on a copy of the client's
    /// configuration, keeping everything else.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), flyhigh_producer::BuildError> {
    /// use flyhigh_producer::{Producer, aws_config, aws_sdk_kinesis};
    ///
    /// let sdk = aws_config::load_from_env().await;
    /// let client = aws_sdk_kinesis::Client::new(&sdk); // e.g. shared with a consumer
    /// let producer = Producer::builder()
    ///     .stream("flyhigh-events")
    ///     .kinesis_client(client)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn kinesis_client(mut self, client: aws_sdk_kinesis::Client) -> Self {
        self.client = Some(crate::kinesis::without_sdk_retries(&client));
        self
    }

    /// Validates the settings and the stream name, checks with one
    /// DescribeStreamSummary that the stream exists and takes writes (`ACTIVE` or
    /// `UPDATING`; bounded by [`ProducerConfig::request_timeout`]), then starts the
    /// producer on the current Tokio runtime. Every failure is a [`BuildError`]
    /// saying what to fix; the credentials need `kinesis:DescribeStreamSummary` on
    /// top of `kinesis:PutRecords` and `kinesis:ListShards`.
    ///
    /// ```no_run
    /// # async fn run() {
    /// use flyhigh_producer::aws_config::{self, BehaviorVersion};
    /// use flyhigh_producer::{BuildError, Producer};
    ///
    /// let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    /// match Producer::builder().stream("flyhigh-events").kinesis(&sdk).build().await {
    ///     Ok(_producer) => { /* send */ }
    ///     Err(e @ BuildError::StreamNotFound { .. }) => eprintln!("{e}"),
    ///     Err(e) => eprintln!("cannot start the producer: {e}"),
    /// }
    /// # }
    /// ```
    pub async fn build(self) -> Result<Producer, BuildError> {
        self.config.validate()?;
        check_dead_letters(&self.config).await?;
        let client = self.client.ok_or(BuildError::MissingTransport)?;
        let stream = self.stream.ok_or(BuildError::MissingStream)?;
        check_stream_name(&stream)?;
        let transport = crate::kinesis::KinesisTransport::new(client, stream);
        let timeout = self.config.request_timeout;
        match tokio::time::timeout(timeout, transport.check_stream()).await {
            Ok(checked) => checked?,
            Err(_) => {
                return Err(BuildError::Unreachable {
                    stream: transport.stream_name().to_owned(),
                    message: format!(
                        "DescribeStreamSummary did not answer within {timeout:?} (request_timeout)"
                    ),
                });
            }
        }
        Ok(Producer::try_new(transport, self.config)?)
    }
}

/// The sink can store letters, checked before any request to the stream.
async fn check_dead_letters(config: &ProducerConfig) -> Result<(), BuildError> {
    config
        .dead_letters
        .check()
        .await
        .map_err(|e| BuildError::DeadLetters(e.0))
}

/// Kinesis's naming rule: 1 to 128 characters of `a-z A-Z 0-9 _ . -`. Checked here
/// so that a typo such as a space, or an ARN, is named as a setting rather than
/// reported by the service as a validation error.
#[cfg(feature = "kinesis")]
fn check_stream_name(name: &str) -> Result<(), ConfigError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let chars = name.chars().count();
    let reason = if chars == 0 || chars > MAX_STREAM_NAME_CHARS {
        format!("{name:?} must be 1 to {MAX_STREAM_NAME_CHARS} characters, got {chars}")
    } else if let Some(bad) = name.chars().find(|c| !allowed(*c)) {
        format!("{name:?} has {bad:?}; a stream name (not an ARN) uses only a-z, A-Z, 0-9, _ . -")
    } else {
        return Ok(());
    };
    Err(ConfigError {
        setting: "stream",
        reason,
    })
}

#[cfg(all(test, feature = "kinesis"))]
mod tests {
    use super::*;

    #[test]
    fn stream_names_follow_the_kinesis_rules() {
        for good in ["flyhigh-events", "a", "A.b_c-9", &"s".repeat(128)] {
            assert_eq!(check_stream_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "my stream",
            "arn:aws:kinesis:eu-west-1:123456789012:stream/flyhigh-events",
            &"s".repeat(129),
        ] {
            let e = check_stream_name(bad).expect_err(bad);
            assert_eq!(e.setting, "stream");
        }
    }

    #[test]
    fn a_missing_client_or_stream_is_named_before_any_call() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            assert_eq!(
                Producer::builder().stream("s").build().await.unwrap_err(),
                BuildError::MissingTransport
            );
            let client = aws_sdk_kinesis::Client::from_conf(
                aws_sdk_kinesis::Config::builder()
                    .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
                    .build(),
            );
            assert_eq!(
                Producer::builder()
                    .kinesis_client(client)
                    .build()
                    .await
                    .unwrap_err(),
                BuildError::MissingStream
            );
        });
    }

    #[tokio::test]
    async fn an_unwritable_dead_letter_file_fails_the_build_naming_it() {
        let refused = Producer::builder()
            .dead_letters_file("/nonexistent-dir/flyhigh/dead.jsonl")
            .build_with(crate::LocalStream::new("s", 1))
            .await;
        match refused {
            Err(BuildError::DeadLetters(message)) => {
                assert!(message.contains("/nonexistent-dir/flyhigh"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }
}
