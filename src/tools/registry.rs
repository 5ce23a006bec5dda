//! Pairs the manifest (`spec/tools.json`) with the tool implementations and dispatches calls.
//!
//! Guarantees: every manifest tool has an implementation and every implementation is in the
//! manifest (an orphan on either side fails start-up); a call reaches a tool only with a JSON
//! object carrying every required argument, anything else is an error for the model. Calls of
//! `mcp__…` tools go to the MCP servers (`mcp/`).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::{
    browser, data, deploy, files, media, python, search, shell, slides, todo, Tool, ToolContext,
    ToolError, ToolOutput, CANCEL_GRACE,
};
use crate::spec::Spec;

pub struct ToolRegistry {
    spec: Arc<Spec>,
    tools: HashMap<&'static str, Box<dyn Tool>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("tool {0} is in the manifest but has no implementation")]
    MissingImplementation(String),
    #[error("tool {0} is implemented but not in the manifest")]
    NotInManifest(String),
}

impl ToolRegistry {
    /// The registry with every built-in tool.
    pub fn new(spec: Arc<Spec>) -> Result<Self, RegistryError> {
        let tools: Vec<Box<dyn Tool>> = vec![
            Box::new(todo::TodoRead),
            Box::new(todo::TodoWrite),
            Box::new(files::ReadFile),
            Box::new(files::WriteFile),
            Box::new(files::EditFile),
            Box::new(shell::Shell),
            Box::new(python::IPython),
            Box::new(deploy::DeployWebsite),
            Box::new(media::GenerateImage),
            Box::new(media::GenerateSpeech),
            Box::new(media::GetAvailableVoices),
            Box::new(media::GenerateSoundEffects),
            Box::new(search::WebSearch),
            Box::new(search::ImageSearch),
            Box::new(browser::BrowserVisit),
            Box::new(browser::BrowserState),
            Box::new(browser::BrowserClick),
            Box::new(browser::BrowserInput),
            Box::new(browser::BrowserScrollDown),
            Box::new(browser::BrowserScrollUp),
            Box::new(browser::BrowserFind),
            Box::new(slides::SlidesGenerator),
            Box::new(data::GetDataSourceDesc),
            Box::new(data::GetDataSource),
        ];
        Self::with_tools(spec, tools)
    }

    pub fn with_tools(spec: Arc<Spec>, tools: Vec<Box<dyn Tool>>) -> Result<Self, RegistryError> {
        let tools: HashMap<&'static str, Box<dyn Tool>> =
            tools.into_iter().map(|tool| (tool.name(), tool)).collect();
        if let Some(name) = tools.keys().find(|name| spec.tool(name).is_none()) {
            return Err(RegistryError::NotInManifest(name.to_string()));
        }
        if let Some(missing) = spec
            .tools
            .iter()
            .find(|t| !tools.contains_key(t.name.as_str()))
        {
            return Err(RegistryError::MissingImplementation(missing.name.clone()));
        }
        Ok(Self { spec, tools })
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Checks the call against the manifest, then runs the tool, raced with the turn's cancel
    /// token: once it fires the tool gets [`CANCEL_GRACE`] to end by itself, then its future
    /// is dropped (blocking work it started is abandoned to the pool and its result dropped),
    /// so a stop never waits on what a tool is doing.
    pub async fn call(
        &self,
        name: &str,
        arguments: &str,
        ctx: &mut ToolContext,
    ) -> Result<ToolOutput, ToolError> {
        let tool = self.tools.get(name);
        let is_mcp = name.starts_with(super::mcp::PREFIX);
        if tool.is_none() && !is_mcp {
            return Err(ToolError::RespondToModel(format!(
                "unknown tool `{name}`; the available tools are: {}",
                self.spec.tool_names().join(", ")
            )));
        }
        let args = self.check_arguments(name, arguments)?;
        let cancel = ctx.cancel.clone();
        let abandon = async {
            cancel.cancelled().await;
            tokio::time::sleep(CANCEL_GRACE).await;
        };
        let work = async {
            if !ctx.workspace_ready {
                // Folders are made on the blocking pool: it can wait on the file system.
                let workspace = ctx.workspace.clone();
                crate::blocking::run(crate::blocking::FILE_WORK, move || workspace.ensure())
                    .await
                    .map_err(|e| ToolError::Fatal(e.to_string()))?
                    .map_err(|e| ToolError::Fatal(format!("cannot create the workspace: {e}")))?;
                ctx.workspace_ready = true;
            }
            match tool {
                Some(tool) => tool.call(args, ctx).await,
                None => ctx.services.mcp.clone().call(name, args, ctx).await,
            }
        };
        tokio::select! {
            biased;
            result = work => result,
            () = abandon => Err(ToolError::RespondToModel(
                "cancelled by the user while it ran; what it was doing was abandoned".into(),
            )),
        }
    }

    /// Parses the model's argument text and checks the required fields (pure).
    pub fn check_arguments(&self, name: &str, arguments: &str) -> Result<Value, ToolError> {
        let args = if arguments.trim().is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_str::<Value>(arguments).map_err(|e| {
                ToolError::RespondToModel(format!(
                    "the arguments for {name} are not valid JSON ({e}); send one JSON object"
                ))
            })?
        };
        let Value::Object(fields) = &args else {
            return Err(ToolError::RespondToModel(format!(
                "the arguments for {name} must be a JSON object, not {args}"
            )));
        };
        if let Some(spec) = self.spec.tool(name) {
            let missing: Vec<&str> = spec
                .required
                .iter()
                .filter(|field| fields.get(field.as_str()).is_none_or(Value::is_null))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Err(ToolError::RespondToModel(format!(
                    "{name} is missing required argument(s): {}",
                    missing.join(", ")
                )));
            }
        }
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> ToolRegistry {
        ToolRegistry::new(Arc::new(Spec::builtin().unwrap())).unwrap()
    }

    #[test]
    fn every_manifest_tool_is_implemented() {
        assert_eq!(registry().tools.len(), 24);
    }

    #[test]
    fn arguments_are_checked_before_the_tool_runs() {
        let r = registry();
        assert!(r
            .check_arguments("mshtools-shell", "{\"command\":\"ls\"}")
            .is_ok());
        let missing = r.check_arguments("mshtools-shell", "{}").unwrap_err();
        assert!(missing.to_string().contains("command"), "{missing}");
        let garbage = r
            .check_arguments("mshtools-shell", "{command: ls")
            .unwrap_err();
        assert!(garbage.to_string().contains("not valid JSON"), "{garbage}");
        let array = r.check_arguments("mshtools-shell", "[1]").unwrap_err();
        assert!(array.to_string().contains("JSON object"), "{array}");
        assert!(r.check_arguments("mshtools-todo_read", "").is_ok());
    }

    #[tokio::test]
    async fn a_stop_abandons_a_tool_that_never_ends() {
        struct Stuck;
        impl crate::tools::TypedTool for Stuck {
            const NAME: &'static str = "stuck";
            type Args = crate::tools::NoArgs;

            async fn run(
                &self,
                _args: Self::Args,
                _ctx: &mut ToolContext,
            ) -> Result<ToolOutput, ToolError> {
                std::future::pending().await
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config::for_tests(dir.path(), "http://127.0.0.1:9/v1");
        let services = crate::build_services(config).unwrap();
        let spec = Spec::from_texts(
            String::new(),
            r#"[{"type":"function","function":{"name":"stuck"}}]"#,
        )
        .unwrap();
        let registry = ToolRegistry::with_tools(Arc::new(spec), vec![Box::new(Stuck)]).unwrap();
        let mut ctx = services.tool_context(&crate::auth::SessionKey {
            owner: crate::auth::Owner::client("c"),
            conversation_id: "s".into(),
        });
        let cancel = ctx.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            cancel.cancel();
        });
        let result = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            registry.call("stuck", "{}", &mut ctx),
        )
        .await
        .expect("the stuck tool held the turn after a stop");
        assert!(
            matches!(&result, Err(ToolError::RespondToModel(m)) if m.contains("cancelled")),
            "{result:?}"
        );
    }

    #[test]
    fn orphans_fail_start_up() {
        let spec = Arc::new(Spec::from_texts(String::new(), "[]").unwrap());
        assert!(matches!(
            ToolRegistry::with_tools(spec, vec![Box::new(todo::TodoRead)]),
            Err(RegistryError::NotInManifest(_))
        ));
        let spec = Arc::new(
            Spec::from_texts(
                String::new(),
                r#"[{"type":"function","function":{"name":"x"}}]"#,
            )
            .unwrap(),
        );
        assert!(matches!(
            ToolRegistry::with_tools(spec, vec![]),
            Err(RegistryError::MissingImplementation(_))
        ));
    }
}
