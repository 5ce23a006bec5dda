//! `mshtools-todo_read` and `mshtools-todo_write`: the session's task list.
//!
//! The list lives in [`ToolState`](super::ToolState), so it belongs to one session and is
//! never shared. A write replaces the whole list; ids must be unique.

use serde::{Deserialize, Serialize};

use super::{NoArgs, ToolContext, ToolError, ToolOutput, TypedTool};

/// Bounds a runaway plan: the list is resent to the model on every read.
const MAX_TODOS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TodoItem {
    pub id: String,
    pub content: String,
    pub status: TodoStatus,
    pub priority: TodoPriority,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TodoStatus {
    Pending,
    InProgress,
    Completed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TodoPriority {
    High,
    Medium,
    Low,
}

pub struct TodoRead;
pub struct TodoWrite;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteArgs {
    todos: Vec<TodoItem>,
}

impl TypedTool for TodoRead {
    const NAME: &'static str = "mshtools-todo_read";
    type Args = NoArgs;

    async fn run(&self, _args: NoArgs, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        render(&ctx.state.todos)
    }
}

impl TypedTool for TodoWrite {
    const NAME: &'static str = "mshtools-todo_write";
    type Args = WriteArgs;

    async fn run(&self, args: WriteArgs, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        validate(&args.todos)?;
        ctx.state.todos = args.todos;
        render(&ctx.state.todos)
    }
}

fn validate(todos: &[TodoItem]) -> Result<(), ToolError> {
    if todos.len() > MAX_TODOS {
        return Err(ToolError::RespondToModel(format!(
            "the list has {} items; keep it to {MAX_TODOS} or fewer",
            todos.len()
        )));
    }
    for (i, item) in todos.iter().enumerate() {
        if item.id.trim().is_empty() || item.content.trim().is_empty() {
            return Err(ToolError::RespondToModel(format!(
                "item {} needs a non-empty id and content",
                i + 1
            )));
        }
        if todos[..i].iter().any(|other| other.id == item.id) {
            return Err(ToolError::RespondToModel(format!(
                "the id {:?} is used twice; ids must be unique",
                item.id
            )));
        }
    }
    Ok(())
}

fn render(todos: &[TodoItem]) -> Result<ToolOutput, ToolError> {
    let count = |status| todos.iter().filter(|t| t.status == status).count();
    let json = serde_json::to_string_pretty(todos)
        .map_err(|e| ToolError::Fatal(format!("cannot encode the todo list: {e}")))?;
    Ok(ToolOutput::text(format!(
        "{} tasks: {} pending, {} in progress, {} completed\n{json}",
        todos.len(),
        count(TodoStatus::Pending),
        count(TodoStatus::InProgress),
        count(TodoStatus::Completed)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, status: TodoStatus) -> TodoItem {
        TodoItem {
            id: id.into(),
            content: format!("task {id}"),
            status,
            priority: TodoPriority::Medium,
        }
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let err = validate(&[
            item("a", TodoStatus::Pending),
            item("a", TodoStatus::Completed),
        ]);
        assert!(matches!(err, Err(ToolError::RespondToModel(m)) if m.contains("twice")));
    }

    #[test]
    fn render_counts_by_status() {
        let out = render(&[
            item("a", TodoStatus::Pending),
            item("b", TodoStatus::Completed),
        ])
        .unwrap();
        assert!(out
            .text
            .starts_with("2 tasks: 1 pending, 0 in progress, 1 completed"));
    }
}
