//! Blobstore clients against real servers and commands (reference/bosh-agent.md §9).

mod dav;
mod external;
mod signed;
