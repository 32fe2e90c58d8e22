//! Exit codes scripts can rely on (the table is in `main.rs` and README.md),
//! and the failure that carries one.

/// Exit code when `lookup --fail-on` matched; nothing else exits 1.
pub(crate) const EXIT_MATCHED: u8 = 1;
/// Exit code for usage and input errors.
pub(crate) const EXIT_INPUT: u8 = 2;
/// Exit code when the node cannot be reached.
pub(crate) const EXIT_UNREACHABLE: u8 = 3;
/// Exit code when the node answered 429 or 5xx, or did not answer in time.
pub(crate) const EXIT_RETRY: u8 = 4;
/// Exit code for any other failure.
pub(crate) const EXIT_FAILED: u8 = 5;

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub(crate) struct Failure {
    /// Exit code.
    pub(crate) code: u8,
    /// What went wrong.
    pub(crate) error: anyhow::Error,
}

impl Failure {
    /// An input or usage error (exit 2).
    pub(crate) fn input(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: EXIT_INPUT,
            error: error.into(),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure {
            code: EXIT_FAILED,
            error: error.into(),
        }
    }
}
