//! Typed configuration with every default in one place. A TOML file may set
//! any field; command-line flags win over the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::b2bua::admission::Cidr;
use crate::policy::{CompileBudget, Compiler, Limits};

pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "plugboard-data";

/// Everything `plugboard serve` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// SIP listeners: UDP and TCP on each (default `0.0.0.0:5060`).
    pub sip_listen: Vec<SocketAddr>,
    pub http_listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Where to find the bundled example policies to load on first start.
    pub example_policies: Option<PathBuf>,
    pub policy_limits: Limits,
    /// Calls at once before new ones get `503` with `Retry-After`.
    pub max_calls: usize,
    /// The `host:port` put in Via and Contact (default: the listen address,
    /// or the host's routed address when listening on every interface).
    pub sip_advertise: Option<String>,
    /// Tell buyers the call's quality and campaign in `X-Plugboard-Quality`
    /// and `X-Plugboard-Campaign` on the outbound INVITE.
    pub sip_quality_headers: bool,
    /// Address ranges new calls may come from (the carriers'); empty, the
    /// default: any. INVITEs from elsewhere get `403`.
    pub sip_trusted_sources: Vec<Cidr>,
    /// INVITEs per second one source address may send (bursts of twice as
    /// many); past it, `503` with `Retry-After`.
    pub sip_invite_rate: u32,
    /// How long a target has to send any response (100 Trying will do)
    /// before the next target rings.
    pub sip_first_response: std::time::Duration,
    /// Percent of the node's CPU one tenant's policies may take while
    /// other tenants have calls (1–100); past it its policies are not run
    /// and its calls go on under their failure modes.
    pub tenant_policy_cpu_percent: u8,
    /// Where uploads compile: by default a child of this executable, under
    /// a CPU time and memory budget.
    pub policy_compiler: Compiler,
    /// Name servers for locating targets (RFC 3263: SRV, A, AAAA); empty,
    /// the default: the system's (`/etc/resolv.conf`).
    pub dns_servers: Vec<SocketAddr>,
    pub sip_tls: SipTls,
}

/// SIP over TLS: the authorities TLS targets are checked against, and the
/// optional TLS listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SipTls {
    /// Certificate authorities (PEM) trusted beside Mozilla's roots.
    pub authorities: Option<PathBuf>,
    /// The TLS listener, with its certificate chain and key (PEM).
    pub listen: Option<SocketAddr>,
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

pub const DEFAULT_MAX_CALLS: usize = 10_000;
/// INVITEs per second from one source: more than a node takes, so only a
/// flood meets it.
pub const DEFAULT_INVITE_RATE: u32 = 2_000;

/// The file's shape: every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub sip_listen: Option<Vec<SocketAddr>>,
    pub http_listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub example_policies: Option<PathBuf>,
    pub max_calls: Option<usize>,
    pub sip_advertise: Option<String>,
    pub sip_quality_headers: Option<bool>,
    pub sip_trusted_sources: Option<Vec<Cidr>>,
    pub sip_invite_rate: Option<u32>,
    pub sip_first_response_ms: Option<u64>,
    pub policy_compile_cpu_seconds: Option<u64>,
    pub policy_compile_memory_mib: Option<u64>,
    pub tenant_policy_cpu_percent: Option<u8>,
    pub dns_servers: Option<Vec<SocketAddr>>,
    pub sip_tls_authorities: Option<PathBuf>,
    pub sip_tls_listen: Option<SocketAddr>,
    pub sip_tls_certificate: Option<PathBuf>,
    pub sip_tls_key: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("bad config {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
}

impl ConfigFile {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_owned(),
            cause,
        })?;
        let file: Self = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        file.check().map_err(|reason| ConfigError::Parse {
            path: path.to_owned(),
            reason,
        })?;
        Ok(file)
    }

    /// Values the types allow but the server cannot use.
    fn check(&self) -> Result<(), String> {
        if self.sip_first_response_ms == Some(0) {
            return Err("sip_first_response_ms must be above 0".to_owned());
        }
        if let Some(percent) = self.tenant_policy_cpu_percent
            && !(1..=100).contains(&percent)
        {
            return Err(format!(
                "tenant_policy_cpu_percent is {percent}; it must be 1 to 100"
            ));
        }
        if self.sip_tls_listen.is_some()
            && (self.sip_tls_certificate.is_none() || self.sip_tls_key.is_none())
        {
            return Err(
                "sip_tls_listen needs sip_tls_certificate and sip_tls_key (PEM files)".to_owned(),
            );
        }
        Ok(())
    }
}

impl Config {
    /// Defaults, then the file, then the flags.
    pub fn resolve(
        file: ConfigFile,
        sip_listen: Vec<SocketAddr>,
        http_listen: Option<SocketAddr>,
        data_dir: Option<PathBuf>,
        example_policies: Option<PathBuf>,
    ) -> Self {
        let sip_listen = if sip_listen.is_empty() {
            file.sip_listen
                .clone()
                .unwrap_or_else(|| vec![SocketAddr::from(([0, 0, 0, 0], 5060))])
        } else {
            sip_listen
        };
        let policy_compiler = this_executable_compiles(&file);
        Config {
            sip_listen,
            http_listen: http_listen
                .or(file.http_listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir: data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            example_policies: example_policies
                .or(file.example_policies)
                .or_else(default_example_dir),
            policy_limits: Limits::default(),
            max_calls: file.max_calls.unwrap_or(DEFAULT_MAX_CALLS),
            sip_advertise: file.sip_advertise.clone(),
            sip_quality_headers: file.sip_quality_headers.unwrap_or(true),
            sip_trusted_sources: file.sip_trusted_sources.clone().unwrap_or_default(),
            sip_invite_rate: file.sip_invite_rate.unwrap_or(DEFAULT_INVITE_RATE),
            sip_first_response: file.sip_first_response_ms.map_or(
                crate::b2bua::DEFAULT_FIRST_RESPONSE_TIMEOUT,
                std::time::Duration::from_millis,
            ),
            tenant_policy_cpu_percent: file
                .tenant_policy_cpu_percent
                .unwrap_or(crate::fair::DEFAULT_TENANT_CPU_PERCENT),
            policy_compiler,
            dns_servers: file.dns_servers.clone().unwrap_or_default(),
            sip_tls: SipTls {
                authorities: file.sip_tls_authorities.clone(),
                listen: file.sip_tls_listen,
                certificate: file.sip_tls_certificate.clone(),
                key: file.sip_tls_key.clone(),
            },
        }
    }
}

/// Uploads compile in a child of this very executable (`plugboard policy
/// compile`), within the file's budget or the default one.
fn this_executable_compiles(file: &ConfigFile) -> Compiler {
    let defaults = CompileBudget::default();
    Compiler::Process {
        program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("plugboard")),
        budget: CompileBudget {
            cpu_seconds: file
                .policy_compile_cpu_seconds
                .unwrap_or(defaults.cpu_seconds),
            memory_bytes: file
                .policy_compile_memory_mib
                .map_or(defaults.memory_bytes, |mib| mib << 20),
        },
    }
}

/// `target/policies` of a checkout, where `cargo xtask policies` puts them.
fn default_example_dir() -> Option<PathBuf> {
    let dir = PathBuf::from("target/policies");
    dir.is_dir().then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file: ConfigFile =
            toml::from_str("http_listen = \"127.0.0.1:9000\"\ndata_dir = \"/srv/pb\"").unwrap();
        let config = Config::resolve(
            file,
            vec![],
            Some("127.0.0.1:9100".parse().unwrap()),
            None,
            None,
        );
        assert_eq!(config.http_listen, "127.0.0.1:9100".parse().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("/srv/pb"));
        let defaults = Config::resolve(ConfigFile::default(), vec![], None, None, None);
        assert_eq!(defaults.http_listen.to_string(), DEFAULT_HTTP_LISTEN);
        assert_eq!(defaults.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn uploads_compile_in_a_child_of_this_executable_within_the_files_budget() {
        let file: ConfigFile =
            toml::from_str("policy_compile_cpu_seconds = 3\npolicy_compile_memory_mib = 512")
                .unwrap();
        let Compiler::Process { program, budget } =
            Config::resolve(file, vec![], None, None, None).policy_compiler
        else {
            panic!("a server compiles in a child");
        };
        assert_eq!(program, std::env::current_exe().unwrap());
        assert_eq!(
            budget,
            CompileBudget {
                cpu_seconds: 3,
                memory_bytes: 512 << 20
            }
        );
    }

    #[test]
    fn a_tenants_cpu_share_is_a_percentage() {
        let defaults = Config::resolve(ConfigFile::default(), vec![], None, None, None);
        assert_eq!(defaults.tenant_policy_cpu_percent, 25);
        for (text, valid) in [("10", true), ("100", true), ("0", false), ("101", false)] {
            let file: ConfigFile =
                toml::from_str(&format!("tenant_policy_cpu_percent = {text}")).unwrap();
            assert_eq!(file.check().is_ok(), valid, "{text}");
        }
    }

    #[test]
    fn a_tls_listener_needs_its_certificate_and_key_and_dns_servers_are_addresses() {
        let file: ConfigFile = toml::from_str(
            "dns_servers = [\"127.0.0.1:5353\"]\nsip_tls_listen = \"0.0.0.0:5061\"\n\
             sip_tls_certificate = \"/etc/pb/chain.pem\"\nsip_tls_key = \"/etc/pb/key.pem\"",
        )
        .unwrap();
        assert!(file.check().is_ok());
        let config = Config::resolve(file, vec![], None, None, None);
        assert_eq!(config.dns_servers, vec!["127.0.0.1:5353".parse().unwrap()]);
        assert_eq!(config.sip_tls.listen, Some("0.0.0.0:5061".parse().unwrap()));
        let without_key: ConfigFile = toml::from_str(
            "sip_tls_listen = \"0.0.0.0:5061\"\nsip_tls_certificate = \"/etc/pb/chain.pem\"",
        )
        .unwrap();
        assert!(without_key.check().unwrap_err().contains("sip_tls_key"));
        assert!(toml::from_str::<ConfigFile>("dns_servers = [\"ns1.example.com\"]").is_err());
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        assert!(toml::from_str::<ConfigFile>("htp_listen = \"x\"").is_err());
    }
}
