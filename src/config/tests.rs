//! Unit tests of okcvm.toml loading and validation.

use super::*;

fn load_str(text: &str) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("okcvm.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path).map(|mut c| {
        // Paths are relative to the temp dir; strip it so tests compare stable values.
        c.workspace.root = c
            .workspace
            .root
            .strip_prefix(dir.path())
            .unwrap()
            .to_path_buf();
        c
    })
}

#[test]
fn defaults_fill_missing_sections() {
    let config = load_str("[server]\nport = 9000\n").unwrap();
    assert_eq!(config.server.port, 9000);
    assert_eq!(config.llm.base_url, "http://127.0.0.1:11434/v1");
    assert_eq!(config.workspace.root, PathBuf::from("data/workspaces"));
}

#[test]
fn invalid_value_names_its_key() {
    let err = load_str("[llm]\nbase_url = \"ftp://x\"\n").unwrap_err();
    assert!(err.to_string().contains("llm.base_url"), "{err}");
    let err = load_str("[sessions]\nmax_sessions = 0\n").unwrap_err();
    assert!(err.to_string().contains("sessions.max_sessions"), "{err}");
    let err = load_str("[search]\nprovider = \"google\"\n").unwrap_err();
    assert!(err.to_string().contains("search.provider"), "{err}");
    let err = load_str("[search]\nprovider = \"searxng\"\n").unwrap_err();
    assert!(err.to_string().contains("search.base_url"), "{err}");
    let err = load_str("[deploy]\nmax_site_mb = 0\n").unwrap_err();
    assert!(err.to_string().contains("deploy.max_site_mb"), "{err}");
}

#[test]
fn unknown_and_mistyped_keys_are_rejected() {
    let err = load_str("[server]\nprot = 1\n").unwrap_err();
    assert!(err.to_string().contains("prot"), "{err}");
    let err = load_str("[server]\nport = \"abc\"\n").unwrap_err();
    assert!(err.to_string().contains("port"), "{err}");
}

#[test]
fn secret_is_redacted() {
    assert_eq!(format!("{:?}", Secret::new("sk-123")), "Secret(***)");
}

#[test]
fn proxy_mode_needs_a_proxy_that_sandboxed_code_cannot_pose_as() {
    let proxy = "[auth]\nmode = \"proxy\"\n";
    let err = load_str(proxy).unwrap_err().to_string();
    assert!(err.contains("auth.trusted_proxies"), "{err}");
    let loopback = format!("{proxy}trusted_proxies = [\"127.0.0.1\"]\n");
    assert!(load_str(&loopback).is_ok());
    let with_network = format!("{loopback}[sandbox]\nnetwork = true\n");
    let err = load_str(&with_network).unwrap_err().to_string();
    assert!(err.contains("claim to be any user"), "{err}");
    let elsewhere = format!("{proxy}trusted_proxies = [\"10.0.0.5\"]\n[sandbox]\nnetwork = true\n");
    assert!(load_str(&elsewhere).is_ok());
    let garbage = format!("{proxy}trusted_proxies = [\"not-an-ip\"]\n");
    assert!(load_str(&garbage).is_err());
}

#[test]
fn context_keys_load_with_the_old_name_and_per_model_tables() {
    let config = load_str("[llm]\ncontext_budget_tokens = 100000\n").unwrap();
    assert_eq!(config.llm.context_window_tokens, Some(100_000));
    let config = load_str(
        "[llm]\nprovider = \"ollama\"\nkeep_alive = \"-1\"\n\n[llm.models.\"qwen2.5:32b\"]\ncontext_window_tokens = 65536\ncompact_at = 0.7\n",
    )
    .unwrap();
    assert_eq!(config.llm.provider, context::Provider::Ollama);
    let limits = config
        .llm
        .limits(context::Provider::Ollama, "qwen2.5:32b", Some(131_072));
    assert_eq!((limits.window_tokens, limits.compact_at), (65_536, 0.7));
    let err = load_str("[llm]\nprovider = \"anthropic\"\n").unwrap_err();
    assert!(err.to_string().contains("provider"), "{err}");
    let err = load_str("[llm.models.\"m\"]\ncompact_at = 2.0\n").unwrap_err();
    assert!(err.to_string().contains("llm.models"), "{err}");
}
