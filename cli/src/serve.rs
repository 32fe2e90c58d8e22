//! `sightline run`: the node and its web server in one process, with clean
//! shutdown on ctrl-c and SIGTERM.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use sightline_node::{NodeConfig, NodeHandle, SystemClock};

use crate::exit::Failure;

/// Installs the log subscriber (`RUST_LOG`, default `info`).
pub(crate) fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,libp2p=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Resolves on ctrl-c or SIGTERM.
pub(crate) async fn terminate_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// A node with its web server, started.
pub(crate) struct Running {
    /// The node.
    pub(crate) node: NodeHandle,
    /// The web server's bound address.
    pub(crate) web: std::net::SocketAddr,
    stop_web: tokio::sync::oneshot::Sender<()>,
    web_task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Starts the node and binds its web server.
    pub(crate) async fn start(config: NodeConfig) -> anyhow::Result<Self> {
        let bind = config.web_bind;
        let node = sightline_node::start(config, Arc::new(SystemClock)).await?;
        let (stop_web, stopped) = tokio::sync::oneshot::channel::<()>();
        let (web, serve) = match sightline_web::bind(node.clone(), bind, async {
            let _ = stopped.await;
        })
        .await
        {
            Ok(bound) => bound,
            Err(e) => {
                node.shutdown().await;
                return Err(e.into());
            }
        };
        let web_task = tokio::spawn(serve);
        Ok(Running {
            node,
            web,
            stop_web,
            web_task,
        })
    }

    /// Stops the web server, then the node (which flushes the store).
    pub(crate) async fn stop(self) {
        let _ = self.stop_web.send(());
        let _ = self.web_task.await;
        self.node.shutdown().await;
    }
}

/// `sightline run --config FILE`.
pub(crate) async fn run(config: &Path) -> Result<ExitCode, Failure> {
    init_logs();
    let config = NodeConfig::load(config).map_err(Failure::input)?;
    let running = Running::start(config).await.context("starting the node")?;
    tracing::info!(web = %format!("http://{}", running.web), peer_id = %running.node.peer_id(), "sightline running; ctrl-c to stop");
    terminate_signal().await;
    tracing::info!("stopping");
    running.stop().await;
    Ok(ExitCode::SUCCESS)
}
