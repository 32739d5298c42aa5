//! Wire texts that directors and bosh-cli match, and the only place that builds them.

/// Prefix of every sync action's error.
const ACTION_FAILED: &str = "Action Failed";

/// Sent when a response would exceed the NATS limit and cannot be shortened.
pub const RESPONSE_TOO_LARGE: &str = "Response exceeded maximum allowed length";

/// Marker between the head and the tail of a truncated exception message.
pub const TRUNCATION_MARKER: &str = "\n...[truncated]...\n";

/// Prefix of the exception a malformed request gets (the Go agent stays silent).
pub const MALFORMED_REQUEST: &str = "malformed request";

/// `unknown message <method>`: the director treats it as "not supported" for some methods.
pub fn unknown_message(method: &str) -> String {
    format!("unknown message {method}")
}

/// `Action Failed <method>: <error chain>`.
pub fn action_failed(method: &str, error: &str) -> String {
    format!("{ACTION_FAILED} {method}: {error}")
}

/// The error `get_task` reports for a failed task: `Task <id> result: <error>`.
pub fn task_result(task_id: &str, error: &str) -> String {
    format!("Task {task_id} result: {error}")
}

/// The error for an unknown task id: `Task with id <id> could not be found`.
pub fn task_not_found(task_id: &str) -> String {
    format!("Task with id {task_id} could not be found")
}

/// The error for too few arguments: `Not enough arguments, expected <n>, got <m>`.
pub fn not_enough_arguments(expected: usize, got: usize) -> String {
    format!("Not enough arguments, expected {expected}, got {got}")
}

/// The error of `cancel_task` for an action that cannot be cancelled.
pub const NOT_SUPPORTED: &str = "not supported";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Response;

    fn exception_json(message: String) -> String {
        String::from_utf8(Response::Exception(message).to_json()).unwrap()
    }

    #[test]
    fn wire_texts_are_pinned_to_their_json_bytes() {
        assert_eq!(
            exception_json(unknown_message("configure_networks")),
            r#"{"exception":{"message":"unknown message configure_networks"}}"#
        );
        assert_eq!(
            exception_json(action_failed("get_task", &task_result("t-1", "boom"))),
            r#"{"exception":{"message":"Action Failed get_task: Task t-1 result: boom"}}"#
        );
        assert_eq!(
            exception_json(action_failed("get_task", &task_not_found("t-2"))),
            r#"{"exception":{"message":"Action Failed get_task: Task with id t-2 could not be found"}}"#
        );
        assert_eq!(
            exception_json(action_failed("mount_disk", &not_enough_arguments(1, 0))),
            r#"{"exception":{"message":"Action Failed mount_disk: Not enough arguments, expected 1, got 0"}}"#
        );
        assert_eq!(
            exception_json(RESPONSE_TOO_LARGE.to_owned()),
            r#"{"exception":{"message":"Response exceeded maximum allowed length"}}"#
        );
        assert_eq!(
            exception_json(action_failed("cancel_task", NOT_SUPPORTED)),
            r#"{"exception":{"message":"Action Failed cancel_task: not supported"}}"#
        );
    }
}
