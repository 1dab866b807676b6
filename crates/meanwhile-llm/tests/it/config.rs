//! Building providers from configuration and environment.

use meanwhile_llm::{LlmError, ProviderConfig, ProviderKind, from_config_with_env};

#[test]
fn a_missing_key_names_the_variable_to_set() {
    let config = ProviderConfig::new(ProviderKind::Anthropic, "claude-sonnet-4-5");
    let err = from_config_with_env(&config, |_| None).unwrap_err();
    assert!(matches!(err, LlmError::MissingApiKey { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "no API key for anthropic: set ANTHROPIC_API_KEY"
    );
}

#[test]
fn the_environment_supplies_key_and_endpoint() {
    let config = ProviderConfig::new(ProviderKind::OpenRouter, "anthropic/claude-sonnet-4.5");
    let provider = from_config_with_env(&config, |name| {
        (name == "OPENROUTER_API_KEY").then(|| "or-key".to_owned())
    })
    .unwrap();
    assert_eq!(provider.kind(), ProviderKind::OpenRouter);
    assert_eq!(provider.model(), "anthropic/claude-sonnet-4.5");
    // The key never shows in debug output.
    assert!(!format!("{provider:?}").contains("or-key"));
}

#[test]
fn provider_names_from_configuration_files_parse() {
    let kind: ProviderKind = "openai-compatible".parse().unwrap();
    let mut config = ProviderConfig::new(kind, "llama3.1:8b");
    config.base_url = Some("http://127.0.0.1:11434/v1".into());
    let provider = from_config_with_env(&config, |_| None).unwrap();
    assert_eq!(provider.kind(), ProviderKind::OpenAiCompatible);
}
