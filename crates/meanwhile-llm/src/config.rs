//! Provider configuration: which wire format, model, endpoint and key, and how to retry.
//!
//! Explicit values win over the environment, which wins over built-in defaults.
//! Environment lookups go through a function so tests need not touch the process
//! environment.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::LlmError;
use crate::price::PriceTable;

/// Which provider to talk to, and so which wire format and environment variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// Anthropic Messages API.
    Anthropic,
    /// OpenAI chat completions.
    OpenAi,
    /// OpenRouter, through its OpenAI-compatible chat completions endpoint.
    OpenRouter,
    /// Any other server speaking OpenAI chat completions (vLLM, Ollama, llama.cpp's
    /// server, ...). Needs a base URL; a key only if the server wants one.
    OpenAiCompatible,
}

impl ProviderKind {
    /// Every kind, in the order they are documented.
    pub const ALL: [ProviderKind; 4] = [
        ProviderKind::Anthropic,
        ProviderKind::OpenAi,
        ProviderKind::OpenRouter,
        ProviderKind::OpenAiCompatible,
    ];

    /// The name used in configuration and error messages.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::OpenAi => "openai",
            ProviderKind::OpenRouter => "openrouter",
            ProviderKind::OpenAiCompatible => "openai-compatible",
        }
    }

    /// The environment variable read for the API key when none is given.
    pub fn api_key_env(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "ANTHROPIC_API_KEY",
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => "OPENAI_API_KEY",
            ProviderKind::OpenRouter => "OPENROUTER_API_KEY",
        }
    }

    /// The environment variable read for the base URL when none is given, if any.
    pub fn base_url_env(self) -> Option<&'static str> {
        match self {
            ProviderKind::Anthropic => Some("ANTHROPIC_BASE_URL"),
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => Some("OPENAI_BASE_URL"),
            // OpenRouter has one endpoint; OPENAI_BASE_URL is meant for OpenAI.
            ProviderKind::OpenRouter => None,
        }
    }

    /// The base URL used when neither configuration nor environment gives one.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::Anthropic => Some("https://api.anthropic.com"),
            ProviderKind::OpenAi => Some("https://api.openai.com/v1"),
            ProviderKind::OpenRouter => Some("https://openrouter.ai/api/v1"),
            ProviderKind::OpenAiCompatible => None,
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// As its name, so that configuration files write `provider = "openrouter"`.
impl serde::Serialize for ProviderKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for ProviderKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for ProviderKind {
    type Err = LlmError;

    fn from_str(name: &str) -> Result<Self, LlmError> {
        let wanted = name.trim().to_ascii_lowercase();
        // A few spellings people type for the generic OpenAI-compatible kind.
        let wanted = match wanted.as_str() {
            "openai_compatible" | "openai-compat" | "vllm" | "ollama" | "llama.cpp"
            | "llamacpp" => "openai-compatible",
            other => other,
        };
        ProviderKind::ALL
            .into_iter()
            .find(|kind| kind.name() == wanted)
            .ok_or_else(|| LlmError::UnknownProvider(name.to_owned()))
    }
}

/// How failed calls are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts in all, the first included; 1 means never retry.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each later one.
    pub initial_backoff: Duration,
    /// Upper bound of the exponential wait.
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured. A provider asking for a longer pause gets no
    /// retry here: the error, which carries its `retry_after`, goes to the caller,
    /// who can schedule the work later instead of holding a call open.
    pub max_retry_after: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 4,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// Everything needed to build a provider. Unset values come from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    /// Which provider.
    pub kind: ProviderKind,
    /// Model used when a request names none.
    pub model: String,
    /// Endpoint root; else the kind's environment variable, else its default.
    pub base_url: Option<String>,
    /// API key; else the kind's environment variable.
    pub api_key: Option<String>,
    /// Longest wait for one HTTP attempt, reply body included. Long replies from
    /// big models can take minutes, hence the generous default of 10 minutes.
    pub request_timeout: Duration,
    /// How failed attempts are retried.
    pub retry: RetryConfig,
    /// Prices used for the cost of each call.
    pub prices: PriceTable,
}

impl ProviderConfig {
    /// A configuration with defaults for everything but the kind and model.
    pub fn new(kind: ProviderKind, model: impl Into<String>) -> Self {
        ProviderConfig {
            kind,
            model: model.into(),
            base_url: None,
            api_key: None,
            request_timeout: Duration::from_secs(600),
            retry: RetryConfig::default(),
            prices: PriceTable::builtin(),
        }
    }
}

/// A configuration with every choice made: what a provider is built from.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub kind: ProviderKind,
    pub model: String,
    /// Without a trailing slash.
    pub base_url: String,
    pub api_key: Option<String>,
    pub request_timeout: Duration,
    pub retry: RetryConfig,
    pub prices: PriceTable,
}

impl Resolved {
    /// Settles every value of `config`, reading unset ones through `env`.
    pub fn new(
        config: &ProviderConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, LlmError> {
        let kind = config.kind;
        // An empty variable is as good as unset: `FOO= cmd` is a common way to
        // clear one.
        let from_env = |name: &str| env(name).filter(|value| !value.trim().is_empty());
        let explicit = |value: &Option<String>| {
            value
                .as_ref()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let model = config.model.trim().to_owned();
        if model.is_empty() {
            return Err(LlmError::InvalidConfig(format!(
                "no model set for {kind}: name one, for example {}",
                match kind {
                    ProviderKind::Anthropic => "claude-sonnet-4-5",
                    ProviderKind::OpenAi => "gpt-4.1",
                    ProviderKind::OpenRouter => "anthropic/claude-sonnet-4.5",
                    ProviderKind::OpenAiCompatible => "the name the server lists",
                }
            )));
        }

        let base_from_user =
            explicit(&config.base_url).or_else(|| kind.base_url_env().and_then(&from_env));
        let base_given = base_from_user.is_some();
        let base_url = match base_from_user.or_else(|| kind.default_base_url().map(str::to_owned)) {
            Some(url) => url,
            None => {
                return Err(LlmError::InvalidConfig(format!(
                    "{kind} needs a base URL: set OPENAI_BASE_URL or base_url (for example http://127.0.0.1:11434/v1 for Ollama)"
                )));
            }
        };
        let parsed = reqwest::Url::parse(&base_url).map_err(|err| {
            LlmError::InvalidConfig(format!(
                "base URL {base_url:?} for {kind} is not a URL ({err}): write it like http://127.0.0.1:8000/v1"
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(LlmError::InvalidConfig(format!(
                "base URL {base_url:?} for {kind} must start with http:// or https://"
            )));
        }
        let base_url = base_url.trim_end_matches('/').to_owned();

        let api_key = explicit(&config.api_key).or_else(|| from_env(kind.api_key_env()));
        // Local servers (vLLM, Ollama, llama.cpp) need no key, and they are reached
        // through a base URL; the hosted defaults always need one.
        let key_required = match kind {
            ProviderKind::Anthropic | ProviderKind::OpenRouter => true,
            ProviderKind::OpenAi => !base_given,
            ProviderKind::OpenAiCompatible => false,
        };
        if api_key.is_none() && key_required {
            return Err(LlmError::MissingApiKey {
                provider: kind.name(),
                env_var: kind.api_key_env(),
            });
        }

        if config.retry.max_attempts == 0 {
            return Err(LlmError::InvalidConfig(
                "retry.max_attempts must be at least 1 (1 means no retry)".to_owned(),
            ));
        }
        if config.request_timeout.is_zero() {
            return Err(LlmError::InvalidConfig(
                "request_timeout must be more than zero".to_owned(),
            ));
        }

        Ok(Resolved {
            kind,
            model,
            base_url,
            api_key,
            request_timeout: config.request_timeout,
            retry: config.retry.clone(),
            prices: config.prices.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(config: &ProviderConfig, vars: &[(&str, &str)]) -> Result<Resolved, LlmError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Resolved::new(config, &move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn names_parse_in_any_case_and_unknown_ones_are_refused() {
        assert_eq!(
            "Anthropic".parse::<ProviderKind>().unwrap(),
            ProviderKind::Anthropic
        );
        assert_eq!(
            "openai-compatible".parse::<ProviderKind>().unwrap(),
            ProviderKind::OpenAiCompatible
        );
        assert_eq!(
            "ollama".parse::<ProviderKind>().unwrap(),
            ProviderKind::OpenAiCompatible
        );
        let err = "gemini".parse::<ProviderKind>().unwrap_err();
        assert!(err.to_string().contains("\"gemini\""), "{err}");

        let kind: ProviderKind = serde_json::from_str("\"openrouter\"").unwrap();
        assert_eq!(kind, ProviderKind::OpenRouter);
        assert_eq!(serde_json::to_string(&kind).unwrap(), "\"openrouter\"");
        let err = serde_json::from_str::<ProviderKind>("\"gemini\"").unwrap_err();
        assert!(err.to_string().contains("unknown LLM provider"), "{err}");
    }

    #[test]
    fn missing_keys_name_the_variable_to_set() {
        for (kind, var) in [
            (ProviderKind::Anthropic, "ANTHROPIC_API_KEY"),
            (ProviderKind::OpenAi, "OPENAI_API_KEY"),
            (ProviderKind::OpenRouter, "OPENROUTER_API_KEY"),
        ] {
            let err = resolve(&ProviderConfig::new(kind, "m"), &[]).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("no API key for {}: set {var}", kind.name())
            );
        }
    }

    #[test]
    fn explicit_values_win_over_the_environment() {
        let mut config = ProviderConfig::new(ProviderKind::Anthropic, "claude-sonnet-4-5");
        config.api_key = Some("explicit".into());
        config.base_url = Some("http://127.0.0.1:9/".into());
        let resolved = resolve(
            &config,
            &[
                ("ANTHROPIC_API_KEY", "env"),
                ("ANTHROPIC_BASE_URL", "http://elsewhere"),
            ],
        )
        .unwrap();
        assert_eq!(resolved.api_key.as_deref(), Some("explicit"));
        assert_eq!(resolved.base_url, "http://127.0.0.1:9");
    }

    #[test]
    fn the_environment_fills_what_is_not_given() {
        let config = ProviderConfig::new(ProviderKind::OpenAi, "gpt-4.1");
        let resolved = resolve(&config, &[("OPENAI_API_KEY", "sk-env")]).unwrap();
        assert_eq!(resolved.api_key.as_deref(), Some("sk-env"));
        assert_eq!(resolved.base_url, "https://api.openai.com/v1");

        let config = ProviderConfig::new(ProviderKind::OpenRouter, "openai/gpt-4o");
        let resolved = resolve(&config, &[("OPENROUTER_API_KEY", "or")]).unwrap();
        assert_eq!(resolved.base_url, "https://openrouter.ai/api/v1");
    }

    #[test]
    fn local_servers_need_a_base_url_but_no_key() {
        let config = ProviderConfig::new(ProviderKind::OpenAiCompatible, "qwen3");
        let err = resolve(&config, &[]).unwrap_err();
        assert!(err.to_string().contains("OPENAI_BASE_URL"), "{err}");

        let resolved =
            resolve(&config, &[("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")]).unwrap();
        assert_eq!(resolved.api_key, None);

        // `openai` pointed at a local server through the environment needs no key either.
        let config = ProviderConfig::new(ProviderKind::OpenAi, "llama3");
        assert!(resolve(&config, &[("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")]).is_ok());
    }

    #[test]
    fn bad_values_are_refused_with_what_to_fix() {
        let mut config = ProviderConfig::new(ProviderKind::OpenAiCompatible, "m");
        config.base_url = Some("127.0.0.1:8000".into());
        let err = resolve(&config, &[]).unwrap_err();
        assert!(err.to_string().contains("http://"), "{err}");

        let config = ProviderConfig::new(ProviderKind::Anthropic, " ");
        let err = resolve(&config, &[("ANTHROPIC_API_KEY", "k")]).unwrap_err();
        assert!(err.to_string().contains("no model set"), "{err}");

        let mut config = ProviderConfig::new(ProviderKind::Anthropic, "m");
        config.retry.max_attempts = 0;
        let err = resolve(&config, &[("ANTHROPIC_API_KEY", "k")]).unwrap_err();
        assert!(err.to_string().contains("max_attempts"), "{err}");
    }
}
