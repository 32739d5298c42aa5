//! The NATS response cap (`handler/perform_handler_with_json.go`): 1 MiB. An exception that does not fit
//! keeps a UTF-8-safe head and tail around [`TRUNCATION_MARKER`]; a value that does not fit, or an
//! exception that cannot be made to fit, becomes the generic [`RESPONSE_TOO_LARGE`] exception.

use crate::protocol::Response;
use crate::protocol::texts::{RESPONSE_TOO_LARGE, TRUNCATION_MARKER};

/// The largest response the agent publishes on NATS.
pub const MAX_NATS_RESPONSE: usize = 1_048_576;

/// Encodes `response` in at most `max` bytes.
pub fn encode_limited(response: &Response, max: usize) -> Vec<u8> {
    let json = response.to_json();
    if json.len() <= max {
        return json;
    }
    if let Response::Exception(message) = response {
        if let Some(json) = truncate_exception(message, max) {
            return json;
        }
    }
    Response::Exception(RESPONSE_TOO_LARGE.to_owned()).to_json()
}

/// The exception with its message cut to a head and a tail that fit in `max` bytes of JSON.
fn truncate_exception(message: &str, max: usize) -> Option<Vec<u8>> {
    let overhead = Response::Exception(TRUNCATION_MARKER.to_owned())
        .to_json()
        .len();
    let mut budget = max.checked_sub(overhead)?;
    // JSON escaping can make the text longer than its bytes; shrink until it fits.
    while budget > 0 {
        let head_len = floor_char_boundary(message, budget / 2);
        let tail_start =
            ceil_char_boundary(message, message.len().saturating_sub(budget - budget / 2));
        let text = format!(
            "{}{TRUNCATION_MARKER}{}",
            &message[..head_len],
            &message[tail_start..]
        );
        let json = Response::Exception(text).to_json();
        if json.len() <= max {
            return Some(json);
        }
        let excess = json.len() - max;
        budget = budget.saturating_sub(excess.max(1));
    }
    None
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

fn ceil_char_boundary(text: &str, mut index: usize) -> usize {
    index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index += 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_responses_pass_unchanged() {
        let response = Response::value("pong");
        assert_eq!(
            encode_limited(&response, MAX_NATS_RESPONSE),
            response.to_json()
        );
    }

    #[test]
    fn a_long_exception_keeps_head_and_tail_within_the_limit() {
        let message = format!("HEAD{}é\"TAIL", "x".repeat(3_000_000));
        let json = encode_limited(&Response::Exception(message), MAX_NATS_RESPONSE);
        assert!(json.len() <= MAX_NATS_RESPONSE, "{}", json.len());
        let Response::Exception(text) = Response::parse(&json).unwrap() else {
            panic!("not an exception");
        };
        assert!(text.starts_with("HEAD"));
        assert!(text.ends_with("é\"TAIL"));
        assert!(text.contains(TRUNCATION_MARKER));
        assert!(
            json.len() > MAX_NATS_RESPONSE - 64,
            "the budget is used: {}",
            json.len()
        );
    }

    #[test]
    fn escaping_heavy_messages_still_fit() {
        let message = "\"\\\u{1}".repeat(400_000);
        let json = encode_limited(&Response::Exception(message), 100_000);
        assert!(json.len() <= 100_000);
        assert!(matches!(
            Response::parse(&json).unwrap(),
            Response::Exception(_)
        ));
    }

    #[test]
    fn a_large_value_becomes_the_generic_exception() {
        let json = encode_limited(&Response::value("y".repeat(2_000_000)), MAX_NATS_RESPONSE);
        assert_eq!(
            json,
            br#"{"exception":{"message":"Response exceeded maximum allowed length"}}"#
        );
    }
}
