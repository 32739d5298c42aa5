//! The BOSH agent: the `bosh-agent` binary and the library behind it.
//!
//! The path of a request: [`bus::nats`] receives it on `agent.<agent_id>` → [`dispatch::Dispatcher`]
//! decodes and routes it ([`action::route`], one module per method) → queries run at once, changes and
//! tasks on the ordered instance lane, tasks tracked by [`task::TaskService`] → the response goes back
//! on the request's `reply_to`. [`app::run`] wires settings, platform, supervisor, dispatcher, bus and
//! [`heartbeat`]s together. [`settings_command`] is the `bosh-agent settings` diagnosis;
//! [`compile_command`] is `bosh-agent compile`, offline compilation of release tarballs;
//! [`monit_command`] is the operator's `monit` command and the agent's socket that answers it.
//!
//! [`protocol`] (the wire types), [`client`] (an agent client for directors and tests) and [`tls`]
//! build without the `daemon` feature.
//!
//! **Architecture invariant:** everything that needs the platform or the jobs crate sits behind the
//! `daemon` feature, so a director depending on `agent` with `default-features = false` compiles no
//! platform code.

#![warn(missing_docs)]
#![warn(clippy::print_stdout)]

#[cfg(feature = "daemon")]
pub mod action;
#[cfg(feature = "daemon")]
pub mod alert;
#[cfg(feature = "daemon")]
pub mod app;
#[cfg(feature = "daemon")]
pub mod bootonce;
#[cfg(feature = "daemon")]
pub mod bootstrap;
#[cfg(feature = "daemon")]
pub mod bus;
pub mod client;
#[cfg(feature = "daemon")]
pub mod compile_command;
#[cfg(feature = "daemon")]
pub mod dispatch;
#[cfg(feature = "daemon")]
pub mod heartbeat;
#[cfg(feature = "daemon")]
pub mod monit_command;
pub mod protocol;
#[cfg(feature = "daemon")]
pub mod settings_command;
#[cfg(feature = "daemon")]
pub mod task;
pub mod tls;
