//! The BOSH agent: the `bosh-agent` binary and the library behind it.
//!
//! Today the agent loads its settings ([`settings_command`] is the `bosh-agent settings` diagnosis of
//! where they come from). The message bus (NATS with mutual TLS, and the HTTPS mbus of
//! `bosh create-env`), the dispatcher, the actions and the task service arrive with the message-bus
//! issue, together with `protocol` (the wire types) and `client` (an agent client for directors and
//! tests), which build without the `daemon` feature.
//!
//! **Architecture invariant:** everything that needs the platform or the jobs crate sits behind the
//! `daemon` feature, so a director depending on `agent` with `default-features = false` compiles no
//! platform code.

#![warn(missing_docs)]
#![warn(clippy::print_stdout)]

pub mod protocol;
#[cfg(feature = "daemon")]
pub mod settings_command;
