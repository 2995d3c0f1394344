//! The running configuration: command-line flags, each with an environment
//! fallback (`--memory-budget` ↔ `RUSTYDB_MEMORY_BUDGET`); flags win.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the server is started with.
#[derive(Clone)]
pub struct Config {
    /// Listening address (`--addr`, default 127.0.0.1:8080).
    pub addr: SocketAddr,
    /// Data directory (`--data-dir`, default `./rustydb-data`): `LOCK`,
    /// `admin.token`, the tables (`rustydb.pages`) and their log (`wal/`).
    pub data_dir: PathBuf,
    /// Buffer-pool frames (`--buffer-pool-pages`, default 1024).
    pub buffer_pool_pages: usize,
    /// Page size in bytes (`--page-size`, default 4096).
    pub page_size: usize,
    /// Memory budget in bytes (`--memory-budget`, default: cgroup `memory.max`, else MemTotal).
    pub memory_budget: Option<u64>,
    /// Limit of each query's memory context (`--query-memory-limit`, default 64 MiB).
    pub query_memory_limit: u64,
    /// Limit of each transaction's memory context (`--txn-memory-limit`, default 256 MiB).
    pub txn_memory_limit: u64,
    /// Admin token (`--admin-token` / `RUSTYDB_ADMIN_TOKEN`); generated when absent.
    pub admin_token: Option<String>,
    /// Token of the readwrite role (`--readwrite-token`), none by default.
    pub readwrite_token: Option<String>,
    /// Token of the readonly role (`--readonly-token`), none by default.
    pub readonly_token: Option<String>,
    /// Requests without `Authorization` get the readonly role (`--allow-anonymous-reads`).
    pub allow_anonymous_reads: bool,
    /// Largest request body accepted (`--max-body-bytes`, default 1 MiB).
    pub max_body_bytes: usize,
    /// Open HTTP connections accepted at once (`--max-connections`, default 1000).
    pub max_connections: usize,
    /// Records kept by the log ring (`--log-capacity`, default 1024).
    pub log_capacity: usize,
    /// Queries slower than this are listed in `slow_queries` (`--slow-query-ms`, default 100).
    pub slow_query_ms: u64,
    /// Open transactions idle this long are rolled back (`--txn-idle-timeout-secs`, default 600).
    pub txn_idle_timeout: Duration,
    /// Sessions idle this long (and without open transactions) are closed
    /// (`--session-idle-timeout-secs`, default 1800).
    pub session_idle_timeout: Duration,
    /// Grace period for open connections at shutdown (`--shutdown-grace-secs`, default 10).
    pub shutdown_grace: Duration,
    /// Print log records to stderr (`--quiet` turns it off).
    pub log_stderr: bool,
    /// Record every request in the log ring at the debug level (`--access-log`;
    /// off by default so the ring keeps the server's own records).
    pub access_log: bool,
    /// Pressure monitor sampling interval (`--pressure-interval-ms`, default 100).
    pub pressure_interval: Duration,
    /// Largest ballast `POST /api/v1/memory/ballast` may hold (`--max-ballast`,
    /// default: twice the memory budget, within 90 % of available memory).
    pub max_ballast: Option<u64>,
    /// Time between checkpoints (`--checkpoint-interval-secs`, default 300).
    pub checkpoint_interval: Duration,
    /// Log bytes that start a checkpoint early (`--checkpoint-wal-bytes`,
    /// default 64 MiB): recovery reads at most about this much log.
    pub checkpoint_wal_bytes: u64,
    /// Samples kept by the history behind `/dashboard` and
    /// `GET /api/v1/memory/history`, one a second (`--history-seconds`,
    /// default 3600: an hour).
    pub history_seconds: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("rustydb-data"),
            buffer_pool_pages: 1024,
            page_size: 4096,
            memory_budget: None,
            query_memory_limit: 64 << 20,
            txn_memory_limit: 256 << 20,
            admin_token: None,
            readwrite_token: None,
            readonly_token: None,
            allow_anonymous_reads: false,
            max_body_bytes: 1 << 20,
            max_connections: 1000,
            log_capacity: 1024,
            slow_query_ms: 100,
            txn_idle_timeout: Duration::from_secs(600),
            session_idle_timeout: Duration::from_secs(1800),
            shutdown_grace: Duration::from_secs(10),
            log_stderr: true,
            access_log: false,
            pressure_interval: Duration::from_millis(100),
            max_ballast: None,
            checkpoint_interval: Duration::from_secs(300),
            checkpoint_wal_bytes: 64 << 20,
            history_seconds: 3600,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are never printed.
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("data_dir", &self.data_dir)
            .field("buffer_pool_pages", &self.buffer_pool_pages)
            .field("page_size", &self.page_size)
            .field("memory_budget", &self.memory_budget)
            .field("query_memory_limit", &self.query_memory_limit)
            .finish_non_exhaustive()
    }
}

/// The usage text of `--help`.
pub const USAGE: &str = "\
rustydb_server: the RustyDB REST + GraphQL server over rustydb-memory

USAGE: rustydb_server [FLAGS]

  --addr <ip:port>                 listen address [127.0.0.1:8080]
  --data-dir <path>                data directory [./rustydb-data]
  --buffer-pool-pages <n>          buffer-pool frames [1024]
  --page-size <bytes>              page size [4096]
  --memory-budget <size>           memory budget, e.g. 2GiB [cgroup memory.max, else MemTotal]
  --query-memory-limit <size>      per-query memory context limit [64MiB]
  --txn-memory-limit <size>        per-transaction memory context limit [256MiB]
  --admin-token <token>            admin bearer token [generated, printed once,
                                   written to <data-dir>/admin.token]
  --readwrite-token <token>        bearer token of the readwrite role [none]
  --readonly-token <token>         bearer token of the readonly role [none]
  --allow-anonymous-reads          requests without a token get the readonly role
  --max-body-bytes <size>          largest request body [1MiB]
  --max-connections <n>            open connections at once [1000]
  --log-capacity <n>               records kept by GET /api/v1/logs [1024]
  --slow-query-ms <ms>             slow-query threshold [100]
  --txn-idle-timeout-secs <s>      idle transactions are rolled back after [600]
  --session-idle-timeout-secs <s>  idle sessions are closed after [1800]
  --shutdown-grace-secs <s>        grace period for connections at shutdown [10]
  --pressure-interval-ms <ms>      pressure monitor interval [100]
  --max-ballast <size>             largest POST /api/v1/memory/ballast [2x budget]
  --checkpoint-interval-secs <s>   time between checkpoints [300]
  --checkpoint-wal-bytes <size>    log written that starts a checkpoint early [64MiB]
  --history-seconds <n>            seconds of history behind /dashboard, 10 to 86400 [3600]
  --access-log                     record every request in the log ring (debug level)
  --quiet                          no log records on stderr
  -h, --help                       this text

Every flag also reads RUSTYDB_<FLAG> from the environment (e.g. RUSTYDB_ADMIN_TOKEN,
RUSTYDB_MEMORY_BUDGET); a flag given on the command line wins. RUSTYDB_MEM_DEBUG
(off|counting|tracking|full) sets the memory debugger's level.
";

/// What parsing the command line produced.
#[derive(Debug)]
pub enum Parsed {
    /// Run with this configuration.
    Run(Box<Config>),
    /// Print the usage and exit.
    Help,
}

/// Parses a size: `4096`, `64k`, `64KiB`, `512M`, `2GiB`, `1g` (binary units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .replace('_', "")
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 4096, 64KiB, 512MiB, 2GiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("`{s}`: unknown unit (use B, KiB, MiB, GiB, TiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))
}

fn env_name(flag: &str) -> String {
    format!("RUSTYDB_{}", flag.trim_start_matches('-').replace('-', "_")).to_ascii_uppercase()
}

const VALUE_FLAGS: &[&str] = &[
    "addr",
    "data-dir",
    "buffer-pool-pages",
    "page-size",
    "memory-budget",
    "query-memory-limit",
    "txn-memory-limit",
    "admin-token",
    "readwrite-token",
    "readonly-token",
    "max-body-bytes",
    "max-connections",
    "log-capacity",
    "slow-query-ms",
    "txn-idle-timeout-secs",
    "session-idle-timeout-secs",
    "shutdown-grace-secs",
    "pressure-interval-ms",
    "max-ballast",
    "checkpoint-interval-secs",
    "checkpoint-wal-bytes",
    "history-seconds",
];
const SWITCHES: &[&str] = &["allow-anonymous-reads", "quiet", "access-log"];

impl Config {
    /// Parses `args` (without the program name), falling back to `env` for
    /// flags not given.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Parsed, String> {
        let mut given: Vec<(String, Option<String>)> = Vec::new();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            if a == "-h" || a == "--help" {
                return Ok(Parsed::Help);
            }
            let Some(body) = a.strip_prefix("--") else {
                return Err(format!("unexpected argument `{a}` (see --help)"));
            };
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (body.to_string(), None),
            };
            if SWITCHES.contains(&name.as_str()) {
                if inline.is_some() {
                    return Err(format!("--{name} takes no value"));
                }
                given.push((name, None));
            } else if VALUE_FLAGS.contains(&name.as_str()) {
                let v = match inline {
                    Some(v) => v,
                    None => it.next().ok_or_else(|| format!("--{name} needs a value"))?,
                };
                given.push((name, Some(v)));
            } else {
                return Err(format!("unknown flag --{name} (see --help)"));
            }
        }
        let mut c = Config::default();
        let lookup = |name: &str| -> Option<String> {
            given
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone().unwrap_or_default())
                .or_else(|| env(&env_name(name)).filter(|v| !v.is_empty()))
        };
        let num = |name: &str, v: &str| -> Result<u64, String> {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("--{name}: `{v}` is not a whole number"))
        };
        for name in VALUE_FLAGS.iter().chain(SWITCHES) {
            let Some(v) = lookup(name) else { continue };
            match *name {
                "addr" => {
                    c.addr = v
                        .parse()
                        .map_err(|_| format!("--addr: `{v}` is not an ip:port address"))?
                }
                "data-dir" => c.data_dir = PathBuf::from(v),
                "buffer-pool-pages" => {
                    c.buffer_pool_pages = num(name, &v)? as usize;
                    if c.buffer_pool_pages == 0 {
                        return Err("--buffer-pool-pages must be at least 1".into());
                    }
                }
                "page-size" => {
                    let p = parse_size(&v)?;
                    if !p.is_power_of_two() || !(512..=(1 << 20)).contains(&p) {
                        return Err(format!(
                            "--page-size: {p} must be a power of two from 512 B to 1 MiB"
                        ));
                    }
                    c.page_size = p as usize;
                }
                "memory-budget" => {
                    let b = parse_size(&v)?;
                    if b < (16 << 20) {
                        return Err("--memory-budget must be at least 16MiB".into());
                    }
                    c.memory_budget = Some(b);
                }
                "query-memory-limit" => c.query_memory_limit = parse_size(&v)?.max(4096),
                "txn-memory-limit" => c.txn_memory_limit = parse_size(&v)?.max(4096),
                "admin-token" => c.admin_token = Some(check_token(name, v)?),
                "readwrite-token" => c.readwrite_token = Some(check_token(name, v)?),
                "readonly-token" => c.readonly_token = Some(check_token(name, v)?),
                "allow-anonymous-reads" => c.allow_anonymous_reads = truthy(&v),
                "quiet" => c.log_stderr = !truthy(&v),
                "access-log" => c.access_log = truthy(&v),
                "max-body-bytes" => c.max_body_bytes = parse_size(&v)?.max(1024) as usize,
                "max-connections" => c.max_connections = num(name, &v)?.max(1) as usize,
                "log-capacity" => c.log_capacity = num(name, &v)?.clamp(16, 1 << 20) as usize,
                "slow-query-ms" => c.slow_query_ms = num(name, &v)?,
                "txn-idle-timeout-secs" => {
                    c.txn_idle_timeout = Duration::from_secs(num(name, &v)?.max(1))
                }
                "session-idle-timeout-secs" => {
                    c.session_idle_timeout = Duration::from_secs(num(name, &v)?.max(1))
                }
                "shutdown-grace-secs" => c.shutdown_grace = Duration::from_secs(num(name, &v)?),
                "max-ballast" => c.max_ballast = Some(parse_size(&v)?),
                "checkpoint-interval-secs" => {
                    c.checkpoint_interval = Duration::from_secs(num(name, &v)?.max(1))
                }
                "checkpoint-wal-bytes" => c.checkpoint_wal_bytes = parse_size(&v)?.max(64 << 10),
                "history-seconds" => {
                    c.history_seconds = num(name, &v)?.clamp(10, 24 * 3600) as usize
                }
                "pressure-interval-ms" => {
                    c.pressure_interval = Duration::from_millis(num(name, &v)?.max(1))
                }
                _ => unreachable!("every flag is handled"),
            }
        }
        Ok(Parsed::Run(Box::new(c)))
    }
}

/// A switch given as a flag has an empty value; from the environment `0`,
/// `false`, `no` and `off` mean off.
fn truthy(v: &str) -> bool {
    !matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "0" | "false" | "no" | "off"
    )
}

fn check_token(name: &str, v: String) -> Result<String, String> {
    let ok = (16..=256).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(v)
    } else {
        Err(format!(
            "--{name}: a token is 16 to 256 visible ASCII characters"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        match Config::parse(args.iter().map(|s| s.to_string()), |_| None)? {
            Parsed::Run(c) => Ok(*c),
            Parsed::Help => Err("help".into()),
        }
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64KiB").unwrap(), 64 << 10);
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("2 GiB").unwrap(), 2 << 30);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999999999999T").is_err());
    }

    #[test]
    fn flags_env_and_errors() {
        let c = parse(&[
            "--addr=127.0.0.1:0",
            "--buffer-pool-pages",
            "64",
            "--memory-budget",
            "1GiB",
            "--quiet",
        ])
        .unwrap();
        assert_eq!(c.addr.port(), 0);
        assert_eq!(c.buffer_pool_pages, 64);
        assert_eq!(c.memory_budget, Some(1 << 30));
        assert!(!c.log_stderr);
        assert!(parse(&["--page-size", "1000"]).is_err());
        assert!(parse(&["--nope"]).is_err());
        assert!(parse(&["--admin-token", "short"]).is_err());
        assert!(matches!(
            Config::parse(["--help".to_string()], |_| None),
            Ok(Parsed::Help)
        ));
        let from_env = Config::parse(Vec::new(), |k| {
            (k == "RUSTYDB_ADMIN_TOKEN").then(|| "0123456789abcdef0123".to_string())
        })
        .unwrap();
        let Parsed::Run(c) = from_env else { panic!() };
        assert_eq!(c.admin_token.as_deref(), Some("0123456789abcdef0123"));
    }
}
