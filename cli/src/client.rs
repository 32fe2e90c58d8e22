//! Client commands: they reach a running node through its JSON API.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Args;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sightline_node::config::Scope;
use sightline_node::node::MAX_BATCH;
use sightline_node::{Band, NodeConfig, Receipt, Status, Submission};
use sightline_protocol::import::{parse_csv, ImportRow};
use sightline_protocol::{Channel, Kind, Verdict};
use sightline_web::api::model::{
    BackupRequest, ErrorBody, LookupRequest, LookupResult, Peers, Receipts, SubmitRequest,
    WithdrawRequest,
};

use crate::exit::{Failure, EXIT_FAILED, EXIT_INPUT, EXIT_MATCHED, EXIT_RETRY, EXIT_UNREACHABLE};

/// How client commands reach a running node.
#[derive(Debug, Clone, Args)]
pub(crate) struct Connection {
    /// The node's sightline.toml (its web address and first token are used).
    #[arg(long, global = true, conflicts_with = "api")]
    config: Option<std::path::PathBuf>,
    /// API base URL, e.g. `http://127.0.0.1:7300`.
    #[arg(long, global = true, env = "SIGHTLINE_API")]
    api: Option<String>,
    /// API bearer token.
    #[arg(long, global = true, env = "SIGHTLINE_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// Largest batch sent in one request by `import`.
const IMPORT_BATCH: usize = 1000;

/// An API client for one node.
pub(crate) struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// The node's API base URL and the token to use for `scope`: from its
/// sightline.toml, or from `--api` and `--token`.
fn resolve(conn: &Connection, scope: Scope) -> Result<(String, Option<String>), Failure> {
    if let Some(path) = &conn.config {
        let config = NodeConfig::load(path).map_err(Failure::input)?;
        let mut addr = config.web_bind;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let token = config
            .tokens
            .iter()
            .find(|t| t.scopes.contains(&scope))
            .or(config.tokens.first())
            .map(|t| t.secret.expose().to_owned());
        Ok((format!("http://{addr}"), conn.token.clone().or(token)))
    } else if let Some(api) = &conn.api {
        Ok((api_base(api)?, conn.token.clone()))
    } else {
        Err(Failure::input(anyhow!(
            "no node given: use --config FILE, or --api URL (env SIGHTLINE_API) with --token (env SIGHTLINE_TOKEN)"
        )))
    }
}

/// `--api` as a base URL: an `http` or `https` URL with a host, without a
/// trailing slash. A bare `127.0.0.1:7300` is refused with the fix, not
/// sent somewhere unexpected.
fn api_base(api: &str) -> Result<String, Failure> {
    let url = reqwest::Url::parse(api).ok().filter(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
    });
    match url {
        Some(_) => Ok(api.trim_end_matches('/').to_owned()),
        None => Err(Failure::input(anyhow!(
            "--api {api:?} is not an http(s) URL; write it with its scheme, e.g. --api http://{}",
            api.trim_start_matches("//")
        ))),
    }
}

/// The node's API base URL, e.g. `http://127.0.0.1:7300`.
pub(crate) fn base_url(conn: &Connection) -> Result<String, Failure> {
    resolve(conn, Scope::Read).map(|(base, _)| base)
}

impl Api {
    pub(crate) fn new(conn: &Connection, scope: Scope) -> Result<Self, Failure> {
        let (base, token) = resolve(conn, scope)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        Ok(Api { base, token, http })
    }

    /// A request that got no answer: exit 4 if it timed out (the node may
    /// have applied it: say so, and do not claim it was unreachable), else 3.
    fn send_failure(&self, e: &reqwest::Error) -> Failure {
        if e.is_timeout() {
            Failure {
                code: EXIT_RETRY,
                error: anyhow!(
                    "timed out waiting for {}; the request may have been applied: {e}",
                    self.base
                ),
            }
        } else {
            Failure {
                code: EXIT_UNREACHABLE,
                error: anyhow!("node unreachable at {}: {e}", self.base),
            }
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, Failure> {
        let request = match &self.token {
            Some(t) => request.bearer_auth(t),
            None => request,
        };
        let response = request.send().await.map_err(|e| self.send_failure(&e))?;
        self.answer(response).await
    }

    /// A JSON answer, or the failure an error answer means.
    async fn answer<T: DeserializeOwned>(&self, response: reqwest::Response) -> Result<T, Failure> {
        let status = response.status();
        // The node answered: whatever cut the answer short, the request
        // may have been applied.
        let bytes = response.bytes().await.map_err(|e| Failure {
            code: EXIT_RETRY,
            error: anyhow!(
                "{} answered {status} but the answer was cut short ({e}); the request may have been applied",
                self.base
            ),
        })?;
        if !status.is_success() {
            return Err(api_failure(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| Failure {
            code: EXIT_FAILED,
            error: anyhow!(
                "{} answered {status} with a body this client does not understand ({e}); is it a Sightline node of this version?",
                self.base
            ),
        })
    }

    /// POSTs `body` and streams a successful answer into a new private
    /// file at `out` (staged beside it, synced, then renamed; never
    /// overwriting). A stream cut short leaves nothing at `out`.
    async fn post_to_file(
        &self,
        path: &str,
        body: &impl Serialize,
        out: &std::path::Path,
    ) -> Result<u64, Failure> {
        use std::io::Write;
        let mut request = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        let mut response = request.send().await.map_err(|e| self.send_failure(&e))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.unwrap_or_default();
            return Err(api_failure(status, &bytes));
        }
        let dir = out
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // tempfile creates the staged file 0600.
        let mut staged = tempfile::Builder::new()
            .prefix(".sightline-backup-")
            .tempfile_in(dir)
            .with_context(|| format!("creating a file in {}", dir.display()))?;
        let mut written = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(|e| Failure {
            code: EXIT_RETRY,
            error: anyhow!("the node cut the backup short ({e}); nothing was written"),
        })? {
            staged.write_all(&chunk)?;
            written += chunk.len() as u64;
        }
        staged.as_file().sync_all()?;
        staged
            .persist_noclobber(out)
            .map_err(|e| anyhow!("writing {}: {}", out.display(), e.error))?;
        std::fs::File::open(dir).and_then(|d| d.sync_all())?;
        Ok(written)
    }

    /// GETs `path` as JSON; `None` for 304 Not Modified.
    pub(crate) async fn get_unless_unchanged<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<T>, Failure> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.map_err(|e| self.send_failure(&e))?;
        if response.status() == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        self.answer(response).await.map(Some)
    }

    /// GETs `path`: the answer's body and the value of `header`, if any.
    pub(crate) async fn get_raw(
        &self,
        path: &str,
        header: &str,
    ) -> Result<(Vec<u8>, Option<String>), Failure> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.map_err(|e| self.send_failure(&e))?;
        let status = response.status();
        let value = response
            .headers()
            .get(header)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await.map_err(|e| Failure {
            code: EXIT_RETRY,
            error: anyhow!("{} cut its answer short: {e}", self.base),
        })?;
        if !status.is_success() {
            return Err(api_failure(status, &bytes));
        }
        Ok((bytes.to_vec(), value))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, Failure> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }
}

/// The failure for an error answer: exit 2 for a client error (the input
/// or the token), 4 for 429 and server errors ("retry later").
fn api_failure(status: reqwest::StatusCode, bytes: &[u8]) -> Failure {
    // Whatever answered may not be a node (a proxy's error page): its
    // status still says what to do.
    let body = serde_json::from_slice::<ErrorBody>(bytes).unwrap_or_else(|_| ErrorBody {
        error: "error".to_owned(),
        detail: status.canonical_reason().unwrap_or("no detail").to_owned(),
        items: None,
        number: None,
    });
    let exit = if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
        EXIT_INPUT
    } else {
        EXIT_RETRY
    };
    Failure {
        code: exit,
        error: ApiFailure {
            status: status.as_u16(),
            body,
        }
        .into(),
    }
}

/// An error answer from the API.
#[derive(Debug)]
struct ApiFailure {
    status: u16,
    body: ErrorBody,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.body.error, self.status, self.body.detail
        )?;
        for item in self.body.items.iter().flatten().take(20) {
            write!(f, "\n  item {}: {}", item.index, item.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiFailure {}

/// `--json`.
#[derive(Debug, Args)]
pub(crate) struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Connection,
}

/// `sightline submit`.
#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    /// The number (international form, or national with --region).
    number: String,
    /// smishing, vishing, callback, bec, robocall, sim-swap, other.
    #[arg(long)]
    kind: Kind,
    /// sms, voice, email, chat, other.
    #[arg(long, default_value = "other")]
    channel: Channel,
    /// malicious, false-positive.
    #[arg(long, default_value = "malicious")]
    verdict: Verdict,
    /// Impersonated brand.
    #[arg(long)]
    brand: Option<String>,
    /// 0–100.
    #[arg(long, default_value_t = 70, value_parser = clap::value_parser!(u8).range(0..=100))]
    confidence: u8,
    /// Observations.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    count: u32,
    /// Default region for national numbers (e.g. US).
    #[arg(long)]
    region: Option<String>,
    /// Read letters as keypad digits (vanity numbers such as +1-800-FLOWERS);
    /// without it a number with letters is refused.
    #[arg(long)]
    vanity: bool,
    /// A link in the lure (repeatable): its registrable domain links the
    /// numbers of one operation (the network must sign record version 2).
    #[arg(long = "url", value_name = "URL")]
    urls: Vec<String>,
    /// The email address, SMS sender id or short code the lure came from.
    #[arg(long)]
    sender: Option<String>,
    /// Your name for the operation: members who use the same tag link on it.
    #[arg(long)]
    campaign: Option<String>,
    /// The lure's text, or @FILE to read it from a file: fingerprinted
    /// locally (a keyed similarity hash), never stored or sent.
    #[arg(long, value_name = "TEXT|@FILE")]
    message: Option<String>,
    /// Print the receipt as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Connection,
}

/// The text of `--message`: as given, or the contents of `@FILE`.
fn message_text(arg: Option<&str>) -> Result<Option<String>, Failure> {
    let Some(arg) = arg else {
        return Ok(None);
    };
    let Some(path) = arg.strip_prefix('@') else {
        return Ok(Some(arg.to_owned()));
    };
    std::fs::read_to_string(path)
        .with_context(|| format!("reading the message from {path}"))
        .map(Some)
        .map_err(Failure::input)
}

/// `sightline submit`.
pub(crate) async fn submit(args: &SubmitArgs) -> Result<ExitCode, Failure> {
    let api = Api::new(&args.conn, Scope::Submit)?;
    let mut sighting = Submission::new(args.number.clone(), args.kind);
    sighting.region.clone_from(&args.region);
    sighting.channel = args.channel;
    sighting.verdict = args.verdict;
    sighting.brand.clone_from(&args.brand);
    sighting.confidence = args.confidence;
    sighting.count = args.count;
    sighting.vanity = args.vanity;
    sighting.urls.clone_from(&args.urls);
    sighting.sender.clone_from(&args.sender);
    sighting.campaign.clone_from(&args.campaign);
    sighting.message = message_text(args.message.as_deref())?;
    let answer: Receipts = api
        .post("/api/v1/sightings", &SubmitRequest::One(Box::new(sighting)))
        .await?;
    let receipt = answer
        .receipts
        .first()
        .ok_or_else(|| anyhow!("the node answered without a receipt"))?;
    if args.json {
        println!("{}", serde_json::to_string(receipt)?);
    } else if receipt.existing {
        println!(
            "already reported {} (seq {}, id {}): the same report within the resubmission window, nothing new signed",
            receipt.number, receipt.seq, receipt.id
        );
    } else {
        println!(
            "submitted {} (seq {}, id {})",
            receipt.number, receipt.seq, receipt.id
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `sightline withdraw`.
#[derive(Debug, Args)]
pub(crate) struct WithdrawArgs {
    /// The number to withdraw this organization's report of.
    number: String,
    /// Default region for national numbers.
    #[arg(long)]
    region: Option<String>,
    /// Read letters as keypad digits (vanity numbers such as +1-800-FLOWERS);
    /// without it a number with letters is refused.
    #[arg(long)]
    vanity: bool,
    #[command(flatten)]
    conn: Connection,
}

/// `sightline withdraw`.
pub(crate) async fn withdraw(args: &WithdrawArgs) -> Result<ExitCode, Failure> {
    let api = Api::new(&args.conn, Scope::Submit)?;
    let receipt: Receipt = api
        .post(
            "/api/v1/sightings/withdraw",
            &WithdrawRequest {
                number: args.number.clone(),
                region: args.region.clone(),
                vanity: args.vanity,
            },
        )
        .await?;
    println!("withdrawn {} (seq {})", receipt.number, receipt.seq);
    Ok(ExitCode::SUCCESS)
}

/// `sightline lookup`.
#[derive(Debug, Args)]
pub(crate) struct LookupArgs {
    /// One or more numbers.
    #[arg(required = true)]
    numbers: Vec<String>,
    /// Default region for national numbers.
    #[arg(long)]
    region: Option<String>,
    /// Read letters as keypad digits (vanity numbers such as +1-800-FLOWERS);
    /// without it a number with letters is refused.
    #[arg(long)]
    vanity: bool,
    /// Exit 1 when any number reaches this band (low, medium, high).
    #[arg(long)]
    fail_on: Option<Band>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Connection,
}

/// `sightline lookup`.
pub(crate) async fn lookup(args: &LookupArgs) -> Result<ExitCode, Failure> {
    let api = Api::new(&args.conn, Scope::Read)?;
    let answer: Answers = api
        .post(
            "/api/v1/lookup",
            &LookupRequest {
                numbers: args.numbers.clone(),
                region: args.region.clone(),
                vanity: args.vanity,
            },
        )
        .await?;
    let results = answer.results;
    let invalid = results
        .iter()
        .filter(|r| matches!(r, Answer::Known(LookupResult::Invalid(_))))
        .count();
    let unreadable = results
        .iter()
        .filter(|r| matches!(r, Answer::Unreadable(_)))
        .count();
    let hit = args
        .fail_on
        .is_some_and(|threshold| matched(&results, threshold));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print_lookup_table(&results);
    }
    // A match matters more to a gateway than a malformed neighbour in the batch.
    if hit {
        return Ok(ExitCode::from(EXIT_MATCHED));
    }
    if unreadable > 0 {
        return Err(Failure {
            code: EXIT_FAILED,
            error: anyhow!(
                "{unreadable} answer(s) in a form this client does not read (is the node newer than this sightline?); no band could be judged for them"
            ),
        });
    }
    Ok(if invalid > 0 {
        ExitCode::from(EXIT_INPUT)
    } else {
        ExitCode::SUCCESS
    })
}

/// Whether an answer reaches `threshold`. A number a trusted member
/// operates never does: its reports are of spoofing (SPEC §13.5).
fn matched(results: &[Answer], threshold: Band) -> bool {
    results.iter().any(|r| {
        matches!(r, Answer::Known(LookupResult::Found(l))
            if l.score.band >= threshold && l.score.protected_by.is_empty())
    })
}

/// A bulk lookup's answer as this client reads it: an item a newer node
/// shapes differently spoils only itself, not the whole answer.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Answers {
    results: Vec<Answer>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Answer {
    Known(LookupResult),
    Unreadable(serde_json::Value),
}

fn print_lookup_table(results: &[Answer]) {
    println!(
        "{:<16} {:<7} {:>5} {:>4} {:<16} {:<7} {:<24} {:>5}  REPORTED BY",
        "NUMBER", "BAND", "SCORE", "ORGS", "LINE", "COUNTRY", "KINDS", "BLOCK"
    );
    for r in results {
        let l = match r {
            Answer::Known(LookupResult::Found(l)) => l,
            Answer::Known(LookupResult::Invalid(item)) => {
                println!("{:<16} invalid: {}", item.input, item.detail);
                continue;
            }
            Answer::Unreadable(_) => {
                println!("{:<16} (an answer this client does not read)", "?");
                continue;
            }
        };
        let kinds: Vec<&str> = l.score.kinds.iter().map(|k| k.as_str()).collect();
        let reporters: Vec<String> = l
            .score
            .reports
            .iter()
            .map(|x| format!("{} ({}, {:+.2})", x.org, x.claim.verdict, x.weight))
            .collect();
        println!(
            "{:<16} {:<7} {:>5.2} {:>4} {:<16} {:<7} {:<24} {:>5}  {}",
            l.number,
            l.score.band.as_str(),
            l.score.score,
            l.score.orgs,
            l.line_type.as_str(),
            l.country,
            kinds.join(","),
            l.block_activity,
            if reporters.is_empty() {
                "—".to_owned()
            } else {
                reporters.join("; ")
            },
        );
        if let Some(c) = &l.campaign {
            println!(
                "  {}; linked by {} (sightline campaign {})",
                campaign_line(c),
                c.links.join(", "),
                c.id
            );
        }
        if let Some(n) = &l.neighbours {
            println!("  neighbours: {}", n.warning);
        }
        for p in &l.score.protected_by {
            println!(
                "  protected: {} operates this number ({}): reports of it are spoofing; never blocked by --fail-on",
                p.org, p.role
            );
        }
    }
}

/// `sightline campaign`.
#[derive(Debug, Args)]
pub(crate) struct CampaignArgs {
    /// The campaign id (`campaign.id` of a lookup).
    id: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Connection,
}

/// `sightline campaign`.
pub(crate) async fn campaign(args: &CampaignArgs) -> Result<ExitCode, Failure> {
    let api = Api::new(&args.conn, Scope::Read)?;
    let c: sightline_node::node::CampaignDetail =
        api.get(&format!("/api/v1/campaigns/{}", args.id)).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", campaign_line(&c.summary));
    println!("  id {}", c.summary.id);
    println!(
        "{:<66} {:<24} {:<10} {:<10} {:<20} {:<20} LINKED BY",
        "NUMBER", "ORGANIZATION", "KIND", "CHANNEL", "BRAND", "LAST SEEN"
    );
    for r in &c.reports {
        println!(
            "{:<66} {:<24} {:<10} {:<10} {:<20} {:<20} {}",
            r.number.as_deref().unwrap_or(&r.number_hash),
            r.org,
            r.kind.as_str(),
            r.channel.as_str(),
            r.brand.as_deref().unwrap_or("—"),
            sightline_web::pages::utc(r.last_seen),
            r.links.join(","),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `sightline protect`.
#[derive(Debug, Args)]
pub(crate) struct ProtectArgs {
    /// A number this organization operates.
    number: String,
    /// inbound-only (it never calls or messages anyone) or outbound.
    #[arg(long)]
    role: sightline_protocol::Role,
    /// Default region for a national number.
    #[arg(long)]
    region: Option<String>,
    /// The brand the number belongs to.
    #[arg(long)]
    brand: Option<String>,
    #[command(flatten)]
    conn: Connection,
}

/// `sightline protect`.
pub(crate) async fn protect(args: &ProtectArgs) -> Result<ExitCode, Failure> {
    let api = Api::new(&args.conn, Scope::Submit)?;
    let mut item = Submission::protect(args.number.clone(), args.role);
    item.region.clone_from(&args.region);
    item.brand.clone_from(&args.brand);
    let answer: Receipts = api
        .post("/api/v1/sightings", &SubmitRequest::One(Box::new(item)))
        .await?;
    let receipt = answer
        .receipts
        .first()
        .ok_or_else(|| anyhow!("the node answered without a receipt"))?;
    println!(
        "protected {} ({}; seq {}): members' lookups show reports of it as spoofing; `sightline withdraw` ends it",
        receipt.number, args.role, receipt.seq
    );
    Ok(ExitCode::SUCCESS)
}

/// `sightline campaigns`.
#[derive(Debug, Args)]
pub(crate) struct CampaignsArgs {
    /// Only campaigns in this state: rising, active, cooling, dormant.
    #[arg(long)]
    state: Option<String>,
    /// How many (at most 200).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Connection,
}

/// `sightline campaigns`.
pub(crate) async fn campaigns(args: &CampaignsArgs) -> Result<ExitCode, Failure> {
    let api = Api::new(&args.conn, Scope::Read)?;
    let mut path = format!("/api/v1/campaigns?limit={}", args.limit);
    if let Some(state) = &args.state {
        if !["rising", "active", "cooling", "dormant"].contains(&state.as_str()) {
            return Err(Failure::input(anyhow!(
                "--state {state:?}: expected rising, active, cooling or dormant"
            )));
        }
        path.push_str("&state=");
        path.push_str(state);
    }
    let answer: sightline_web::api::model::Campaigns = api.get(&path).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer.campaigns)?);
        return Ok(ExitCode::SUCCESS);
    }
    if answer.campaigns.is_empty() {
        println!("no campaigns among the latest reports");
    }
    for c in &answer.campaigns {
        println!(
            "{}
  sightline campaign {}",
            campaign_line(c),
            c.id
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One line about a campaign, for people.
fn campaign_line(c: &sightline_node::node::CampaignSummary) -> String {
    let brands: Vec<&str> = c.brands.iter().map(String::as_str).collect();
    format!(
        "campaign: {}{} numbers in {} block(s), {} org(s), {:?}, {} to {}{}",
        if c.complete { "" } else { "at least " },
        c.numbers,
        c.blocks,
        c.orgs.len(),
        c.state,
        sightline_web::pages::utc(c.first_seen),
        sightline_web::pages::utc(c.last_seen),
        if brands.is_empty() {
            String::new()
        } else {
            format!(", brands {}", brands.join(", "))
        }
    )
    .to_lowercase()
}

/// `sightline peers`.
pub(crate) async fn peers(args: &JsonFlag) -> Result<ExitCode, Failure> {
    let api = Api::new(&args.conn, Scope::Read)?;
    let answer: Peers = api.get("/api/v1/peers").await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer.peers)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<14} {:<54} ADDRESSES",
        "ORGANIZATION", "STATE", "PEER ID"
    );
    for p in &answer.peers {
        println!(
            "{:<24} {:<14} {:<54} {}",
            p.org,
            if p.connected {
                "connected"
            } else {
                "not connected"
            },
            p.peer_id,
            p.addresses.join(" "),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `sightline status`.
pub(crate) async fn status(args: &JsonFlag) -> Result<ExitCode, Failure> {
    let api = Api::new(&args.conn, Scope::Read)?;
    let s: Status = api.get("/api/v1/status").await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("organization  {}", s.org);
    println!("network       {} ({})", s.network_name, s.network);
    println!("peer id       {}", s.peer_id);
    println!("peers         {} connected", s.net.connected);
    println!("sightings     {} stored, own seq {}", s.records, s.own_seq);
    println!(
        "from peers    {} received, {} stored",
        s.received, s.stored_from_peers
    );
    if !s.rejected.is_empty() {
        let parts: Vec<String> = s.rejected.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("rejected      {}", parts.join(" "));
    }
    // Flagged organizations: a key used twice, a flood over the limits.
    for (org, n) in &s.equivocations {
        println!("FLAGGED       {org} signed {n} conflicting record(s) with a reused seq");
    }
    for (org, n) in &s.over_limit {
        println!(
            "FLAGGED       {org} went over the network's limits ({} records an hour, {} numbers a day): {n} record(s) ignored",
            s.limits.records_per_hour, s.limits.numbers_per_day,
        );
    }
    for o in &s.origins {
        println!(
            "  {:<22} {:>7} records, seq {} (contiguous {})",
            o.org, o.count, o.max_seq, o.contiguous
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `sightline import`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["file", "misp"]))]
pub(crate) struct ImportArgs {
    /// CSV file with a header `number,kind[,channel,brand,confidence,first_seen,last_seen,count]`, or - for stdin.
    file: Option<String>,
    /// A MISP event JSON file, or a MISP feed directory (`manifest.json`
    /// and its event files): every phone-number attribute marked for
    /// detection, with its times; kinds from the tags that name one.
    #[arg(long, value_name = "FILE|DIR")]
    pub(crate) misp: Option<std::path::PathBuf>,
    /// With --misp: the kind of numbers no tag names a kind for.
    #[arg(long, requires = "misp", default_value = "other")]
    pub(crate) kind: Kind,
    /// Default region for national numbers.
    #[arg(long)]
    region: Option<String>,
    /// Store the valid rows even if others are rejected. Without it an
    /// import stores every row or none (up to 10,000 rows, one batch the
    /// node stores whole).
    #[arg(long)]
    partial: bool,
    #[command(flatten)]
    conn: Connection,
}

/// A row that could not be imported.
pub(crate) struct BadRow {
    /// Its position in the input, for ordering.
    pub(crate) order: u64,
    /// Where it is, for people: `line 12`, `event …, attribute …`.
    pub(crate) place: String,
    pub(crate) number: String,
    pub(crate) reason: String,
}

/// A row ready to send.
pub(crate) struct Row {
    /// Its position in the input.
    pub(crate) order: u64,
    /// Where it is, for people.
    pub(crate) place: String,
    /// Its number as written.
    pub(crate) number: String,
    pub(crate) submission: Submission,
}

/// The submission for a parsed import row: what the row leaves out takes
/// the node's defaults.
fn row_submission(row: &ImportRow, region: Option<&str>) -> Submission {
    let mut s = Submission::new(row.number.clone(), row.kind);
    s.region = region.map(str::to_owned);
    if let Some(channel) = row.channel {
        s.channel = channel;
    }
    s.brand.clone_from(&row.brand);
    if let Some(confidence) = row.confidence {
        s.confidence = confidence;
    }
    if let Some(count) = row.count {
        s.count = count;
    }
    s.first_seen = row.first_seen;
    s.last_seen = row.last_seen;
    s.urls.clone_from(&row.links.urls);
    s.sender.clone_from(&row.links.sender);
    s.campaign.clone_from(&row.links.campaign);
    s.message.clone_from(&row.links.message);
    s
}

/// The file's rows as the node will get them, and the rows refused before
/// sending (with their line numbers).
fn read_rows(args: &ImportArgs) -> Result<(Vec<Row>, Vec<BadRow>), Failure> {
    let file = args.file.as_deref().unwrap_or("-");
    let reader: Box<dyn std::io::Read> = if file == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(file)
                .with_context(|| format!("opening {file}"))
                .map_err(Failure::input)?,
        )
    };
    let parsed = parse_csv(reader, args.region.as_deref()).map_err(Failure::input)?;
    let bad = parsed
        .errors
        .into_iter()
        .map(|e| BadRow {
            order: e.line,
            place: format!("line {}", e.line),
            number: e.number,
            reason: e.reason,
        })
        .collect();
    let good = parsed
        .rows
        .iter()
        .map(|r| Row {
            order: r.line,
            place: format!("line {}", r.line),
            number: r.number.clone(),
            submission: row_submission(r, args.region.as_deref()),
        })
        .collect();
    Ok((good, bad))
}

/// The rows of `sent` the node refused in an `invalid_batch` answer, or
/// `None` if the failure is not one.
fn refused_rows(failure: &Failure, sent: &[&Row]) -> Option<Vec<(usize, BadRow)>> {
    if failure.code != EXIT_INPUT {
        return None;
    }
    let items = failure
        .error
        .downcast_ref::<ApiFailure>()?
        .body
        .items
        .as_ref()?;
    let refused: Vec<_> = items
        .iter()
        .filter_map(|item| {
            let row = sent.get(item.index)?;
            Some((
                item.index,
                BadRow {
                    order: row.order,
                    place: row.place.clone(),
                    number: row.number.clone(),
                    reason: item.reason.clone(),
                },
            ))
        })
        .collect();
    (!refused.is_empty()).then_some(refused)
}

fn print_rejected(bad: &mut [BadRow]) {
    bad.sort_by_key(|b| b.order);
    for b in bad.iter() {
        if b.number.is_empty() {
            println!("  {}: {}", b.place, b.reason);
        } else {
            println!("  {} ({}): {}", b.place, b.number, b.reason);
        }
    }
}

/// `sightline import`: every row or none. Rows the file or the node
/// refuses are listed by line and nothing is stored (exit 2); a failure of
/// the node stores nothing either (the node stores a batch whole). With
/// `--partial`, the valid rows are stored and the rest listed (exit 2 if
/// any were rejected).
pub(crate) async fn import(args: &ImportArgs) -> Result<ExitCode, Failure> {
    let api = Api::new(&args.conn, Scope::Submit)?;
    let (good, mut bad) = match &args.misp {
        Some(path) => crate::interop::read_misp(path, args.kind, args.region.as_deref())?,
        None => read_rows(args)?,
    };
    if args.partial {
        return import_partial(&api, good, bad).await;
    }
    let total = good.len() + bad.len();
    if good.len() > MAX_BATCH {
        return Err(Failure::input(anyhow!(
            "{total} rows: an import stores every row or none, up to {MAX_BATCH} rows (one batch \
             the node stores whole); split the file, or use --partial; nothing was stored"
        )));
    }
    if bad.is_empty() && !good.is_empty() {
        let body = SubmitRequest::Many(good.iter().map(|r| r.submission.clone()).collect());
        match api.post::<Receipts>("/api/v1/sightings", &body).await {
            Ok(answer) => {
                println!(
                    "imported {} row(s): {} new report(s), {} already stored",
                    good.len(),
                    answer.accepted.saturating_sub(answer.existing),
                    answer.existing
                );
                return Ok(ExitCode::SUCCESS);
            }
            Err(failure) => {
                let sent: Vec<&Row> = good.iter().collect();
                match refused_rows(&failure, &sent) {
                    Some(refused) => bad.extend(refused.into_iter().map(|(_, b)| b)),
                    None => {
                        return Err(Failure {
                            code: failure.code,
                            error: failure.error.context("import: nothing was stored"),
                        })
                    }
                }
            }
        }
    }
    if bad.is_empty() {
        println!("imported 0 row(s): the file has no rows");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "nothing was stored: {} of {total} row(s) rejected (fix them, or use --partial to store the others)",
        bad.len()
    );
    print_rejected(&mut bad);
    Ok(ExitCode::from(EXIT_INPUT))
}

/// `sightline import --partial`: bad rows are reported with their line
/// numbers and never stop the good ones.
pub(crate) async fn import_partial(
    api: &Api,
    good: Vec<Row>,
    mut bad: Vec<BadRow>,
) -> Result<ExitCode, Failure> {
    let progress = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(good.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut imported = 0usize;
    for chunk in good.chunks(IMPORT_BATCH) {
        let mut pending: Vec<&Row> = chunk.iter().collect();
        // The node validates a batch whole; rows it refuses are reported and
        // the rest are sent again.
        while !pending.is_empty() {
            let body = SubmitRequest::Many(pending.iter().map(|r| r.submission.clone()).collect());
            match api.post::<Receipts>("/api/v1/sightings", &body).await {
                Ok(answer) => {
                    imported += answer.accepted;
                    progress.inc(pending.len() as u64);
                    break;
                }
                Err(failure) => {
                    let Some(refused) = refused_rows(&failure, &pending) else {
                        progress.finish_and_clear();
                        let error = failure
                            .error
                            .context(format!("import: {imported} row(s) were stored before this"));
                        return Err(Failure {
                            code: failure.code,
                            error,
                        });
                    };
                    progress.inc(refused.len() as u64);
                    let indexes: std::collections::BTreeSet<usize> =
                        refused.iter().map(|(i, _)| *i).collect();
                    bad.extend(refused.into_iter().map(|(_, b)| b));
                    pending = pending
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| !indexes.contains(i))
                        .map(|(_, r)| r)
                        .collect();
                }
            }
        }
    }
    progress.finish_and_clear();
    println!("imported {imported} row(s), rejected {}", bad.len());
    print_rejected(&mut bad);
    Ok(if bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INPUT)
    })
}

/// `sightline backup`.
#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// Where to write the archive (created with mode 0600; must not exist).
    #[arg(long)]
    out: std::path::PathBuf,
    /// Encrypt to this age recipient (`age1…`, from `sightline backup-key`
    /// or `age-keygen`); repeat for several.
    #[arg(long = "recipient", value_name = "AGE_RECIPIENT")]
    recipients: Vec<String>,
    /// Encrypt with the passphrase in this file (at least 12 characters;
    /// or set `SIGHTLINE_BACKUP_PASSPHRASE`).
    #[arg(long, conflicts_with = "recipients")]
    passphrase_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    conn: Connection,
}

/// `sightline backup`: asks the running node for an encrypted archive and
/// streams it to a private file beside `--out`, renamed into place only
/// once the node has sent all of it.
pub(crate) async fn backup(args: &BackupArgs) -> Result<ExitCode, Failure> {
    if args.out.exists() {
        return Err(Failure::input(anyhow!(
            "{} already exists",
            args.out.display()
        )));
    }
    let passphrase = crate::files::backup_passphrase(args.passphrase_file.as_deref())?;
    if args.recipients.is_empty() && passphrase.is_none() {
        return Err(Failure::input(anyhow!(
            "a backup holds the node key and the organization's raw numbers: encrypt it with \
             --recipient age1… (see `sightline backup-key`) or --passphrase-file FILE \
             (or SIGHTLINE_BACKUP_PASSPHRASE)"
        )));
    }
    let api = Api::new(&args.conn, Scope::Admin)?;
    let body = BackupRequest {
        recipients: args.recipients.clone(),
        passphrase,
    };
    let bytes = api.post_to_file("/api/v1/backup", &body, &args.out).await?;
    println!(
        "wrote {} ({bytes} bytes, mode 0600, age-encrypted; it holds the node key and raw numbers)",
        args.out.display(),
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_item_this_client_cannot_read_spoils_only_itself() {
        let answers: Answers = serde_json::from_str(
            r#"{"results": [
                {"input": "hello", "error": "invalid_number", "reason": "not_a_number", "detail": "not a number"},
                {"number": "+14155550100", "band": "extreme", "from": "a newer node"}
            ]}"#,
        )
        .unwrap();
        assert!(matches!(
            &answers.results[0],
            Answer::Known(LookupResult::Invalid(i)) if i.input == "hello"
        ));
        assert!(matches!(&answers.results[1], Answer::Unreadable(_)));
    }

    #[test]
    fn fail_on_never_fires_on_a_protected_number() {
        let answer = |protected: &str| -> Vec<Answer> {
            let text = format!(
                r#"{{"results": [{{"number": "+12125550100", "country": "US", "cc": 1,
                "line_type": "fixed-or-mobile", "score": 0.9, "band": "high", "orgs": 1,
                "first_seen": 1, "last_seen": 2, "kinds": ["vishing"], "channels": ["voice"],
                "brands": [], "reports": [], "block_activity": 1, "campaign": null,
                "neighbours": null{protected}}}]}}"#
            );
            serde_json::from_str::<Answers>(&text).unwrap().results
        };
        assert!(matched(&answer(""), Band::High));
        let protected = r#", "protected_by": [{"org": "Bank", "role": "inbound-only"}]"#;
        assert!(!matched(&answer(protected), Band::Low));
    }

    #[test]
    fn a_newer_nodes_status_fields_are_ignored() {
        let limits: serde_json::Value = serde_json::json!({
            "records_per_hour": 10, "numbers_per_day": 20, "links_per_record": 8
        });
        let read = sightline_node::store::Limits::deserialize_reported(limits).unwrap();
        assert_eq!(read.numbers_per_day, 20);
    }
}
