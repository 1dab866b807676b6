//! An agent's settings, resolved from explicit values (flags), the environment and
//! the `[agent]` section of `$MEANWHILE_HOME/config.toml`, in that order.

use crate::budget::Budget;
use crate::error::AgentError;
use crate::tools::defs;
use meanwhile_llm::{PriceTable, Provider, ProviderConfig, ProviderKind, RetryConfig};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Turns per run when nothing says otherwise: enough for real work, few enough that
/// a model stuck in a loop stops on its own.
pub const DEFAULT_MAX_TURNS: u32 = 50;

/// Everything an agent run needs to know. Build it with [`AgentConfig::new`] and
/// adjust fields, or with [`AgentConfig::resolve`] from flags, environment and file.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Which provider (and so which wire format).
    pub provider: ProviderKind,
    /// The model.
    pub model: String,
    /// The provider's endpoint; its environment variable or default when `None`.
    pub base_url: Option<String>,
    /// The API key; its environment variable when `None`.
    pub api_key: Option<String>,
    /// The directory the file tools are confined to and commands run in.
    pub workspace: PathBuf,
    /// The meanwhile session that the agent's tasks notify. Reusing a name in a later
    /// run delivers the notices of tasks an earlier run left running.
    pub session: String,
    /// How long `bash` waits before leaving a command in the background.
    pub bash_background_after: Duration,
    /// Limits of one run.
    pub budget: Budget,
    /// Most tokens the model may write in one reply.
    pub max_output_tokens: u32,
    /// Tools the model may use; all of them when `None`.
    pub tools: Option<Vec<String>>,
    /// Extra instructions appended to the system prompt.
    pub instructions: Option<String>,
    /// Bytes of one tool's output given to the model at most.
    pub output_limit: usize,
    /// The queue sub-agents run in unless the model names one.
    pub subagent_queue: Option<String>,
    /// Longest wait for one model call.
    pub request_timeout: Duration,
    /// How failed model calls are retried.
    pub retry: RetryConfig,
    /// Prices for the cost of each call.
    pub prices: PriceTable,
    /// What the agent may do without asking (see [`crate::permissions`]).
    pub permissions: crate::permissions::Permissions,
    /// Run what the rules leave to asking without asking (`--yes`).
    pub yes: bool,
    /// Run every command the agent starts as a sandboxed task (`--sandbox`).
    pub sandbox: bool,
}

impl AgentConfig {
    /// Defaults for everything but the provider, model and workspace; the session is
    /// a new one named for the current time.
    pub fn new(
        provider: ProviderKind,
        model: impl Into<String>,
        workspace: impl Into<PathBuf>,
    ) -> AgentConfig {
        AgentConfig {
            provider,
            model: model.into(),
            base_url: None,
            api_key: None,
            workspace: workspace.into(),
            session: format!(
                "agent-{}",
                meanwhile_core::Timestamp::from(std::time::SystemTime::now()).0
            ),
            bash_background_after: Duration::from_secs(30),
            budget: Budget {
                max_turns: Some(DEFAULT_MAX_TURNS),
                ..Budget::default()
            },
            max_output_tokens: 8192,
            tools: None,
            instructions: None,
            output_limit: 16_000,
            subagent_queue: None,
            request_timeout: Duration::from_secs(600),
            retry: RetryConfig::default(),
            prices: PriceTable::builtin(),
            permissions: crate::permissions::Permissions::default(),
            yes: false,
            sandbox: false,
        }
    }

    /// The provider configuration these settings describe.
    pub fn provider_config(&self) -> ProviderConfig {
        let mut c = ProviderConfig::new(self.provider, self.model.clone());
        c.base_url = self.base_url.clone();
        c.api_key = self.api_key.clone();
        c.request_timeout = self.request_timeout;
        c.retry = self.retry.clone();
        c.prices = self.prices.clone();
        c
    }

    /// Builds the provider, reading unset values from the process environment.
    pub fn build_provider(&self) -> Result<Arc<dyn Provider>, AgentError> {
        self.build_provider_with_env(|name| std::env::var(name).ok())
    }

    /// Builds the provider, reading unset values through `env`.
    pub fn build_provider_with_env(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Arc<dyn Provider>, AgentError> {
        meanwhile_llm::from_config_with_env(&self.provider_config(), env).map_err(|error| {
            let hint = match &error {
                meanwhile_llm::LlmError::MissingApiKey { .. } => {
                    " (or pass --api-key, or set api_key in the [agent] section of $MEANWHILE_HOME/config.toml)"
                        .to_string()
                }
                _ => String::new(),
            };
            AgentError::ProviderSetup { error, hint }
        })
    }

    /// The tools enabled by `tools`, checked.
    pub fn enabled_tools(&self) -> Result<Vec<&'static str>, AgentError> {
        enabled_tools(self.tools.as_deref(), &defs::ALL_TOOLS)
    }

    /// Resolves settings from `overrides` (explicit values win), then the
    /// environment (`MEANWHILE_AGENT_PROVIDER`, `MEANWHILE_AGENT_MODEL`,
    /// `MEANWHILE_AGENT_SESSION`, the provider's key and base URL variables), then the
    /// `[agent]` section of the configuration file (`overrides.config_file`, else
    /// `$MEANWHILE_HOME/config.toml`), then defaults.
    pub fn resolve(
        overrides: &AgentOverrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<AgentConfig, AgentError> {
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let path = overrides.config_file.clone().or_else(|| config_path(&env));
        let file = match &path {
            Some(p) => read_section(p, overrides.config_file.is_some())?,
            None => AgentSection::default(),
        };

        let provider_name = overrides
            .provider
            .clone()
            .or_else(|| env("MEANWHILE_AGENT_PROVIDER"))
            .or(file.provider.clone());
        let provider = match provider_name {
            Some(name) => name
                .parse::<ProviderKind>()
                .map_err(|e| AgentError::config(e.to_string()))?,
            // With nothing said, use the provider whose key is set.
            None => [
                ProviderKind::Anthropic,
                ProviderKind::OpenAi,
                ProviderKind::OpenRouter,
            ]
            .into_iter()
            .find(|k| env(k.api_key_env()).is_some())
            .unwrap_or(ProviderKind::Anthropic),
        };
        let model = overrides
            .model
            .clone()
            .or_else(|| env("MEANWHILE_AGENT_MODEL"))
            .or(file.model.clone())
            .or_else(|| default_model(provider).map(str::to_string))
            .ok_or_else(|| {
                AgentError::config(format!(
                    "no model set for {provider}: pass --model, set MEANWHILE_AGENT_MODEL, or set model in the [agent] section of the config file"
                ))
            })?;
        let workspace = match overrides.workspace.clone().or(file.workspace.clone()) {
            Some(w) => w,
            None => std::env::current_dir().map_err(|source| AgentError::Workspace {
                path: PathBuf::from("."),
                source,
            })?,
        };
        let mut c = AgentConfig::new(provider, model, workspace);
        c.base_url = overrides
            .base_url
            .clone()
            .or_else(|| provider.base_url_env().and_then(&env))
            .or(file.base_url.clone());
        c.api_key = overrides
            .api_key
            .clone()
            .or_else(|| env(provider.api_key_env()))
            .or(file.api_key.clone());
        if let Some(s) = overrides
            .session
            .clone()
            .or_else(|| env("MEANWHILE_AGENT_SESSION"))
            .or(file.session.clone())
        {
            c.session = s;
        }
        if let Some(d) = overrides
            .bash_background_after
            .or(file.bash_background_after)
        {
            c.bash_background_after = d;
        }
        c.budget = Budget {
            max_turns: overrides
                .max_turns
                .or(file.max_turns)
                .or(c.budget.max_turns),
            max_tokens: overrides.max_tokens.or(file.max_tokens),
            max_cost_usd: overrides.max_cost_usd.or(file.max_cost_usd),
        };
        if let Some(n) = file.max_output_tokens {
            c.max_output_tokens = n;
        }
        c.tools = overrides.tools.clone().or(file.tools.clone());
        c.instructions = file.instructions.clone();
        c.subagent_queue = file.subagent_queue.clone();
        if let Some(t) = file.request_timeout {
            c.request_timeout = t;
        }
        if let Some(p) = file.prices.clone() {
            c.prices.merge(p);
        }
        let file_rules = file.permissions.clone().unwrap_or_default();
        c.permissions =
            crate::permissions::Permissions::new(&[&overrides.permissions, &file_rules])
                .map_err(|e| AgentError::config(format!("agent.{e}")))?;
        c.yes = overrides.yes;
        c.sandbox = overrides.sandbox || file.sandbox.unwrap_or(false);
        c.validate()?;
        Ok(c)
    }

    /// [`AgentConfig::resolve`] with the process environment.
    pub fn load(overrides: &AgentOverrides) -> Result<AgentConfig, AgentError> {
        AgentConfig::resolve(overrides, &|name| std::env::var(name).ok())
    }

    /// Checks the values that can be wrong whatever their source.
    pub fn validate(&self) -> Result<(), AgentError> {
        self.enabled_tools()?;
        let mut probe = meanwhile_core::TaskSpec::shell("true");
        probe.session = Some(self.session.clone());
        probe.queue = self.subagent_queue.clone();
        probe
            .validate()
            .map_err(|e| AgentError::config(format!("agent {e}")))?;
        if self.budget.max_turns == Some(0) {
            return Err(AgentError::config("max_turns must be at least 1"));
        }
        if self
            .budget
            .max_cost_usd
            .is_some_and(|c| !(c.is_finite() && c >= 0.0))
        {
            return Err(AgentError::config(
                "max_cost_usd must be a number of dollars, 0 or more",
            ));
        }
        if self.max_output_tokens == 0 {
            return Err(AgentError::config("max_output_tokens must be at least 1"));
        }
        Ok(())
    }
}

/// The model used for `kind` when none is configured.
pub fn default_model(kind: ProviderKind) -> Option<&'static str> {
    match kind {
        ProviderKind::Anthropic => Some("claude-sonnet-4-5"),
        ProviderKind::OpenAi => Some("gpt-4.1"),
        ProviderKind::OpenRouter => Some("anthropic/claude-sonnet-4.5"),
        ProviderKind::OpenAiCompatible => None,
    }
}

pub(crate) fn enabled_tools(
    names: Option<&[String]>,
    default: &[&'static str],
) -> Result<Vec<&'static str>, AgentError> {
    let Some(names) = names else {
        return Ok(default.to_vec());
    };
    let mut out = Vec::new();
    for n in names {
        let known = defs::ALL_TOOLS
            .iter()
            .copied()
            .find(|t| *t == n.trim())
            .ok_or_else(|| {
                AgentError::config(format!(
                    "unknown tool {n:?}; the tools are {}",
                    defs::ALL_TOOLS.join(", ")
                ))
            })?;
        if !out.contains(&known) {
            out.push(known);
        }
    }
    Ok(out)
}

/// Values given explicitly (command-line flags); each wins over every other source.
#[derive(Debug, Clone, Default)]
pub struct AgentOverrides {
    /// Provider name (`anthropic`, `openai`, `openrouter`, `openai-compatible`).
    pub provider: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Endpoint.
    pub base_url: Option<String>,
    /// API key.
    pub api_key: Option<String>,
    /// Workspace directory.
    pub workspace: Option<PathBuf>,
    /// Session name.
    pub session: Option<String>,
    /// `bash` background threshold.
    pub bash_background_after: Option<Duration>,
    /// Most model calls per run.
    pub max_turns: Option<u32>,
    /// Most tokens per run.
    pub max_tokens: Option<u64>,
    /// Most USD per run.
    pub max_cost_usd: Option<f64>,
    /// Tools the model may use.
    pub tools: Option<Vec<String>>,
    /// The configuration file; `$MEANWHILE_HOME/config.toml` when absent. A file
    /// named here must exist; the default one may be missing.
    pub config_file: Option<PathBuf>,
    /// Permission rules read before the file's (`--allow`, `--ask`, `--deny`).
    pub permissions: crate::permissions::PermissionRules,
    /// Run what the rules leave to asking without asking.
    pub yes: bool,
    /// Sandbox every command the agent runs (or `sandbox = true` in the file).
    pub sandbox: bool,
}

/// The `[agent]` section of the configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentSection {
    provider: Option<String>,
    model: Option<String>,
    base_url: Option<String>,
    api_key: Option<String>,
    workspace: Option<PathBuf>,
    session: Option<String>,
    #[serde(default, with = "meanwhile_core::serde_opt_duration")]
    bash_background_after: Option<Duration>,
    max_turns: Option<u32>,
    max_tokens: Option<u64>,
    max_cost_usd: Option<f64>,
    max_output_tokens: Option<u32>,
    tools: Option<Vec<String>>,
    instructions: Option<String>,
    subagent_queue: Option<String>,
    #[serde(default, with = "meanwhile_core::serde_opt_duration")]
    request_timeout: Option<Duration>,
    prices: Option<PriceTable>,
    permissions: Option<crate::permissions::PermissionRules>,
    sandbox: Option<bool>,
}

/// `$MEANWHILE_HOME/config.toml`, else the platform data directory's.
fn config_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let home = env("MEANWHILE_HOME").map(PathBuf::from).or_else(|| {
        env("XDG_DATA_HOME")
            .map(|d| PathBuf::from(d).join("meanwhile"))
            .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".local/share/meanwhile")))
    })?;
    Some(home.join("config.toml"))
}

fn read_section(path: &Path, must_exist: bool) -> Result<AgentSection, AgentError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
            return Ok(AgentSection::default());
        }
        Err(source) => {
            return Err(AgentError::ConfigFile {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    // Other sections belong to other parts of meanwhile; only `[agent]` is read here.
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        agent: Option<AgentSection>,
    }
    let file: File = toml::from_str(&text).map_err(|source| AgentError::ConfigSyntax {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(file.agent.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_with(o: &AgentOverrides, vars: &[(&str, &str)]) -> Result<AgentConfig, AgentError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AgentConfig::resolve(o, &move |n| {
            vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
        })
    }

    fn home_with(config: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("config.toml"), config).unwrap();
        d
    }

    #[test]
    fn flags_win_over_environment_over_file() {
        let d = home_with(
            r#"
            [server]
            listen = "ignored: another section"

            [agent]
            provider = "openai"
            model = "file-model"
            api_key = "file-key"
            session = "file-session"
            bash_background_after = "5s"
            max_turns = 7
            max_cost_usd = 1.5
            "#,
        );
        let home = d.path().display().to_string();
        let c = resolve_with(&AgentOverrides::default(), &[("MEANWHILE_HOME", &home)]).unwrap();
        assert_eq!(c.provider, ProviderKind::OpenAi);
        assert_eq!(c.model, "file-model");
        assert_eq!(c.api_key.as_deref(), Some("file-key"));
        assert_eq!(c.session, "file-session");
        assert_eq!(c.bash_background_after, Duration::from_secs(5));
        assert_eq!(c.budget.max_turns, Some(7));
        assert_eq!(c.budget.max_cost_usd, Some(1.5));

        let c = resolve_with(
            &AgentOverrides::default(),
            &[
                ("MEANWHILE_HOME", &home),
                ("MEANWHILE_AGENT_MODEL", "env-model"),
                ("OPENAI_API_KEY", "env-key"),
            ],
        )
        .unwrap();
        assert_eq!(c.model, "env-model");
        assert_eq!(c.api_key.as_deref(), Some("env-key"));

        let o = AgentOverrides {
            model: Some("flag-model".into()),
            provider: Some("anthropic".into()),
            max_turns: Some(3),
            ..AgentOverrides::default()
        };
        let c = resolve_with(
            &o,
            &[("MEANWHILE_HOME", &home), ("MEANWHILE_AGENT_MODEL", "env")],
        )
        .unwrap();
        assert_eq!(c.model, "flag-model");
        assert_eq!(c.provider, ProviderKind::Anthropic);
        assert_eq!(c.budget.max_turns, Some(3));
    }

    #[test]
    fn permissions_and_the_sandbox_come_from_flags_then_the_file() {
        use crate::permissions::Verdict;
        let d = home_with(
            r#"
            [agent]
            sandbox = true
            [agent.permissions]
            allow = ["bash(cargo *)", "write_file(src/*)"]
            deny = ["bash(cargo publish*)"]
            "#,
        );
        let home = d.path().display().to_string();
        let vars = [
            ("MEANWHILE_HOME", home.as_str()),
            ("ANTHROPIC_API_KEY", "k"),
        ];
        let c = resolve_with(&AgentOverrides::default(), &vars).unwrap();
        assert!(c.sandbox && !c.yes);
        let bash = |cmd: &str| serde_json::json!({ "command": cmd });
        assert_eq!(
            c.permissions.decide("bash", &bash("cargo test")).verdict,
            Verdict::Allow
        );
        assert_eq!(
            c.permissions.decide("bash", &bash("cargo publish")).verdict,
            Verdict::Deny
        );
        assert_eq!(
            c.permissions.decide("bash", &bash("make")).verdict,
            Verdict::Ask
        );
        // The command line's rules are read before the file's.
        let o = AgentOverrides {
            permissions: crate::permissions::PermissionRules {
                ask: vec!["bash(cargo test*)".into()],
                ..Default::default()
            },
            yes: true,
            ..AgentOverrides::default()
        };
        let c = resolve_with(&o, &vars).unwrap();
        assert_eq!(
            c.permissions.decide("bash", &bash("cargo test")).verdict,
            Verdict::Ask
        );
        assert!(c.yes);
        let d = home_with("[agent.permissions]\nallow = [\"bash(x\"]\n");
        let home = d.path().display().to_string();
        let e = resolve_with(
            &AgentOverrides::default(),
            &[
                ("MEANWHILE_HOME", home.as_str()),
                ("ANTHROPIC_API_KEY", "k"),
            ],
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("agent.permissions.allow: \"bash(x\""),
            "{e}"
        );
    }

    #[test]
    fn the_provider_follows_the_key_that_is_set() {
        let d = tempfile::tempdir().unwrap();
        let home = d.path().display().to_string();
        let c = resolve_with(
            &AgentOverrides::default(),
            &[("MEANWHILE_HOME", &home), ("OPENROUTER_API_KEY", "k")],
        )
        .unwrap();
        assert_eq!(c.provider, ProviderKind::OpenRouter);
        assert_eq!(c.model, "anthropic/claude-sonnet-4.5");
    }

    #[test]
    fn a_missing_key_says_where_to_set_one() {
        let d = tempfile::tempdir().unwrap();
        let home = d.path().display().to_string();
        let c = resolve_with(&AgentOverrides::default(), &[("MEANWHILE_HOME", &home)]).unwrap();
        let e = c.build_provider_with_env(|_| None).unwrap_err().to_string();
        assert!(
            e.contains("no API key for anthropic: set ANTHROPIC_API_KEY"),
            "{e}"
        );
        assert!(e.contains("[agent]"), "{e}");
    }

    #[test]
    fn bad_files_and_values_are_named() {
        let d = home_with("[agent]\nmodle = \"x\"\n");
        let home = d.path().display().to_string();
        let e = resolve_with(&AgentOverrides::default(), &[("MEANWHILE_HOME", &home)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("config.toml") && e.contains("modle"), "{e}");

        let d = home_with("[agent]\nbash_background_after = \"soon\"\n");
        let home = d.path().display().to_string();
        let e = resolve_with(&AgentOverrides::default(), &[("MEANWHILE_HOME", &home)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("like 30s"), "{e}");

        let o = AgentOverrides {
            tools: Some(vec!["bash".into(), "rm".into()]),
            config_file: Some(d.path().join("missing.toml")),
            ..AgentOverrides::default()
        };
        let e = resolve_with(&o, &[]).unwrap_err().to_string();
        assert!(e.contains("missing.toml"), "{e}");

        let o = AgentOverrides {
            tools: Some(vec!["bash".into(), "rm".into()]),
            provider: Some("gemini".into()),
            ..AgentOverrides::default()
        };
        let e = resolve_with(&o, &[]).unwrap_err().to_string();
        assert!(e.contains("unknown LLM provider \"gemini\""), "{e}");

        let o = AgentOverrides {
            tools: Some(vec!["bash".into(), "rm".into()]),
            ..AgentOverrides::default()
        };
        let e = resolve_with(&o, &[]).unwrap_err().to_string();
        assert!(e.contains("unknown tool \"rm\""), "{e}");

        let o = AgentOverrides {
            session: Some("no spaces allowed".into()),
            ..AgentOverrides::default()
        };
        let e = resolve_with(&o, &[]).unwrap_err().to_string();
        assert!(e.contains("session"), "{e}");
    }
}
