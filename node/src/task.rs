//! Running blocking work off the async threads, and joining spawned tasks.

use tokio::task::JoinHandle;

/// Runs blocking store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    joined(tokio::task::spawn_blocking(f)).await
}

/// The value of a spawned task: a panic in it is resumed here; if the
/// runtime is shutting down and dropped the task, this never resolves.
pub(crate) async fn joined<T>(task: JoinHandle<T>) -> T {
    match task.await {
        Ok(value) => value,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => std::future::pending().await,
    }
}
